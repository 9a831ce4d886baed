--- `lumu diff [--env NAME]... [shared flags]`: what `lumu up` would change,
-- per stack (added / modified / removed resources, replacements, property
-- paths), through change sets that are created, shown and deleted; nothing
-- is deployed.
-- Exit (Terraform's -detailed-exitcode, Copilot's `package --diff`): 0 no
-- changes, 2 changes present, 1 error; 130 interrupted.
local project = require "lumu.project"

return project.command {
  name = "diff",
  usage_exit = 1,
  summary = "show what 'lumu up' would change (exit 0 none, 2 changes, 1 error)",
  usage = "lumu diff [--env NAME]... [--output json] [options]",
  help = [[
Creates a change set for every stack of the project (or of --env NAME...),
shows the changes, and deletes the change sets: nothing is deployed.
Exit status (as Terraform's -detailed-exitcode): 0 no changes, 2 changes
present, 1 error (usage and configuration errors too), 130 interrupted.]],
  options = {
    { "--env", arg = "NAME", multi = true, files = false, desc = "only this environment (repeatable)" },
  },
  run = function(ctx, args, opts)
    local s, err, code = project.session(ctx, opts)
    if not s then return nil, err, code == 130 and 130 or 1 end
    if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "' (use --env NAME)", 1 end
    local envs
    if opts.env then
      envs, err = s:environments(opts.env)
      if not envs then return nil, err, 1 end
    end
    local stacks
    stacks, err = s:plan(envs)
    if not stacks then return nil, err, 1 end
    project.set_image_tag(stacks, s.revision)
    local rc, derr, dcode = s:diff(stacks)
    if rc == nil then return nil, derr, dcode == 130 and 130 or 1 end
    return rc
  end,
}
