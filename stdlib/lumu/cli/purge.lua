--- `lumu purge [--confirm] [shared flags]`: deletes every lumu/mu stack of
-- the namespace (stacks named <ns>-* with a mu:type tag), in mu's order:
-- catalog products and portfolios, pipelines, schedules, services,
-- databases, tables, load balancers, environments, VPCs and targets,
-- repositories, apps, buckets, IAM stacks, the common IAM stack last; then
-- the managed database password parameters.  Asks first unless --confirm
-- (or --yes); without a terminal it lists the stacks and exits 4.
-- The configuration is not needed (only the namespace: -n, MU_NAMESPACE,
-- the file's).
local project = require "lumu.project"

return project.command {
  name = "purge",
  summary = "delete every stack of the namespace (asks unless --confirm)",
  usage = "lumu purge [--confirm] [-n NS] [options]",
  help = [[
Finds every stack of the namespace (name <ns>-*, tagged mu:type) and deletes
them, dependants first, then the databases' managed password parameters.
Lists them and asks unless --confirm or --yes; without a terminal and
without either it exits 4.  Databases and keys are protected unless
--allow-data-loss.]],
  options = {
    { "--confirm", desc = "do not ask (mu)" },
  },
  run = function(ctx, args, opts)
    local s, err, code = project.session(ctx, opts, { config = "optional" })
    if not s then return nil, err, code end
    if #args > 0 then return nil, s.name .. ": unexpected argument '" .. args[1] .. "'", 2 end
    if s.dryrun then return nil, s.name .. ": --dryrun: a dry run cannot list what exists", 2 end
    local stacks
    stacks, err = s:stacks(nil, true)
    if not stacks then return nil, s.name .. ": " .. tostring(err), 1 end
    if #stacks == 0 then
      s:say("purge: no stack in namespace %s", s.namespace)
      return 0
    end
    local ordered = project.order_for_delete(stacks)
    for _, st in ipairs(ordered) do s.err:write("  ", st.name, " (", tostring(st.tags["mu:type"]), ")\n") end
    if opts.confirm then s.yes = true end
    if not s.yes then
      if not s.interactive then
        return nil, string.format("purge: %d stack%s would be deleted: run again with --confirm", #ordered,
          #ordered == 1 and "" or "s"), project.EXIT.not_confirmed
      end
      if not s:confirm(string.format("Delete these %d stacks of namespace %s?", #ordered, s.namespace)) then
        s.err:write("lumu: purge: nothing deleted\n")
        return project.EXIT.not_confirmed
      end
      s.yes = true
    end
    s.interactive = false
    local names = {}
    local params = {}
    local secrets = require "lumu.gen.secrets"
    for i, st in ipairs(ordered) do
      names[i] = st.name
      if st.tags["mu:type"] == "database" and st.tags["mu:service"] and st.tags["mu:environment"] then
        params[#params + 1] = secrets.password_parameter_name(s.namespace, st.tags["mu:service"],
          st.tags["mu:environment"])
      end
    end
    local rc, derr, dcode = s:down(names)
    if rc ~= 0 then return rc, derr, dcode end
    for _, p in ipairs(params) do
      local ok, perr = s:call("ssm", "DeleteParameter", { Name = p })
      if ok then
        s:say("deleted SSM parameter %s", p)
      elseif not (type(perr) == "table" and perr.code == "ParameterNotFound") then
        return nil, s.name .. ": " .. tostring(perr), 1
      end
    end
    return 0
  end,
}
