--- `lumu up [--env NAME]... [shared flags]`: deploys the whole project --
-- every environment, service, database, pipeline and the catalog -- as one
-- dependency graph (independent stacks concurrently).  --env limits it to
-- some environments (pipelines and the catalog are left out then).
-- Managed database passwords are created first (lumu.project).  Service
-- stacks run the image tagged with the revision (LUMU_REVISION, CodeBuild's
-- source version or the git short sha) when there is one.
-- Exit: 0 ok (also "no changes"), 1 failure, 2 usage/configuration, 4
-- changes not confirmed (no terminal and no --yes), 130 interrupted.
local project = require "lumu.project"

return project.command {
  name = "up",
  summary = "deploy the whole project: environments, services, databases, pipelines, catalog",
  usage = "lumu up [--env NAME]... [--yes] [--output json] [--outputs-file FILE] [options]",
  help = [[
Generates every stack (as 'lumu synth' does) and deploys them in dependency
order, independent stacks concurrently: each create or update goes through a
change set, shown before it runs.  Without a terminal and without --yes it
shows the changes and exits 4.  --env NAME (repeatable) limits the
environments.  -d/--dryrun writes the files to -O DIR instead.
Exit status: 0 ok or no changes, 1 failure, 2 usage or configuration error,
4 changes not confirmed, 130 interrupted.]],
  options = {
    { "--env", arg = "NAME", multi = true, files = false, desc = "only this environment (repeatable)" },
  },
  run = function(ctx, args, opts)
    local s, err, code = project.session(ctx, opts)
    if not s then return nil, err, code end
    if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "' (use --env NAME)", 2 end
    local envs
    if opts.env then
      envs, err, code = s:environments(opts.env)
      if not envs then return nil, err, code end
    end
    local stacks
    stacks, err, code = s:plan(envs)
    if not stacks then return nil, err, code end
    project.set_image_tag(stacks, s.revision)
    return s:up(stacks)
  end,
}
