--- Dev environments: `devenv{...}` / `devenvs:` -> one `<ns>-devenv-<env>`
-- stack per entry holding an AWS Cloud9 EC2 environment per team member,
-- inside that environment's VPC.  Pure Lua, no AWS calls.
--
-- local devenv = require "lumu.gen.devenv"
-- devenv.stacks(model, ctx) -> descriptors | nil, err
--   ctx = {namespace=, environments = {name...} | nil (all), git = {provider=,
--   repo=} (detected)}.  For each model.devenvs entry with members (and in
--   ctx.environments): `<ns>-devenv-<env>` (kind "devenv", env), in the
--   environment's account (descriptor.account/profile/role), after the
--   environment stack.  Each member gets AWS::Cloud9::EnvironmentEC2
--   `<ns>-<env>-<member>`: InstanceType (the member's, else the entry's),
--   ImageId, AutomaticStopTimeMinutes, OwnerArn = member.ownerArn,
--   ConnectionType CONNECT_SSM (no inbound port: the instance subnets are
--   private), SubnetId = the first of the environment stack's
--   InstanceSubnetIds export (parameter InstanceSubnetIds = its export name),
--   Repositories = {{PathComponent=, RepositoryUrl=}} cloning the project's
--   repository: `repository`, else the first service pipeline's source
--   (GitHub: https://github.com/<owner>/<repo>.git; CodeCommit: the HTTPS
--   clone URL of the region), else ctx.git's; none for an S3 source.
--   err: "devenvs[i].repository: ..." when nothing names a repository.
-- devenv.repository_url(provider, repo) -> URL expression | nil
local cfn = require "lumu.cfn"
local common = require "lumu.gen.common"

local M = {}

local arr = common.array

function M.repository_url(provider, repo)
  if type(repo) ~= "string" or repo == "" then return nil end
  if provider == "CodeCommit" then
    return cfn.Sub("https://git-codecommit.${AWS::Region}.${AWS::URLSuffix}/v1/repos/" .. repo)
  elseif provider == "GitHub" or provider == nil then
    return "https://github.com/" .. repo .. ".git"
  end
  return nil
end

local function project_repo(model, ctx)
  for _, svc in ipairs(model.services or {}) do
    local src = svc.pipeline and svc.pipeline.source
    if src and src.repo then return src.provider or "GitHub", src.repo end
  end
  local git = ctx.git or {}
  if git.repo then return git.provider, git.repo end
  return nil
end

local function env_of(model, name)
  for _, e in ipairs(model.environments or {}) do
    if type(e.name) == "string" and e.name:lower() == name:lower() then return e end
  end
  return nil
end

local function wanted(ctx, name)
  if ctx.environments == nil then return true end
  for _, n in ipairs(ctx.environments) do
    if n:lower() == name:lower() then return true end
  end
  return false
end

function M.stacks(model, ctx)
  if type(model) ~= "table" then error("bad argument #1 to 'stacks' (model table expected)", 2) end
  ctx = ctx or {}
  local ns = ctx.namespace or model.namespace or "mu"
  local out = {}
  for i, dv in ipairs(model.devenvs or {}) do
    local path = dv._path or ("devenvs[" .. i .. "]")
    if #dv.members > 0 and wanted(ctx, dv.environment) then
      local url, clone
      if dv.repository then
        url = dv.repository
        clone = dv.repository:match("([^/]+)$"):gsub("%.git$", "")
      else
        local provider, repo = project_repo(model, ctx)
        if provider == "S3" then
          return nil, path .. ".repository: the pipeline's source is S3; give the repository URL to clone"
        end
        url = M.repository_url(provider, repo)
        if not url then
          return nil, path .. ".repository: no pipeline source and no git remote name a repository; give repository"
        end
        clone = repo:match("([^/]+)$")
      end
      local t = cfn.template({ description = "lumu dev environments (AWS Cloud9) of environment " .. dv.environment })
      t:parameter("InstanceSubnetIds", { Type = "String",
        Description = "Export name of the environment's instance subnet ids" })
      local subnet = cfn.Select(0, cfn.Split(",", common.import("InstanceSubnetIds")))
      for _, m in ipairs(dv.members) do
        local name = ns .. "-" .. dv.environment .. "-" .. m.name
        if #name > 60 then
          return nil, path .. ".members: the Cloud9 name " .. name .. " is longer than 60 characters"
        end
        local id = "Cloud9" .. m.name:gsub("[^%w]+(%w?)", function(c) return c:upper() end):gsub("^%l", string.upper)
        common.resource(t, id, "AWS::Cloud9::EnvironmentEC2", "Cloud9 environment of " .. m.name, {
          Name = name,
          Description = "lumu dev environment of " .. m.name .. " in " .. dv.environment,
          InstanceType = m.instanceType or dv.instanceType,
          ImageId = dv.imageId,
          AutomaticStopTimeMinutes = dv.automaticStopTimeMinutes,
          OwnerArn = m.ownerArn,
          ConnectionType = "CONNECT_SSM",
          SubnetId = subnet,
          Repositories = arr({ { PathComponent = dv.path or ("/" .. clone), RepositoryUrl = url } }),
          Tags = arr({ { Key = "mu:environment", Value = dv.environment }, { Key = "lumu:member", Value = m.name } }),
        })
        t:output(id .. "Id", cfn.Ref(id), { description = "Cloud9 environment of " .. m.name })
      end
      local envstack = common.stack_name(ns, "environment", dv.environment)
      local d = common.stack({
        name = common.stack_name(ns, "devenv", dv.environment), kind = "devenv", env = dv.environment,
        template = t:to_table({ consume = true }),
        parameters = { InstanceSubnetIds = common.export_name(envstack, "InstanceSubnetIds") },
        depends = { envstack },
        description = "Cloud9 dev environments (" .. #dv.members .. ") in environment " .. dv.environment,
      })
      local e = env_of(model, dv.environment)
      if e and e.account then
        d.account, d.profile = e.account, e.profile
        d.role = e.role or ("arn:aws:iam::" .. e.account .. ":role/" .. ns .. "-deploy")
      end
      out[#out + 1] = d
    end
  end
  return out
end

return M
