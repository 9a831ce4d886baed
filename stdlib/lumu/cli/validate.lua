--- `lumu validate [-c FILE] [-n NAMESPACE] [--strict] [--print] [--schemas DIR]
-- [--config-only]`: checks the configuration (lumu.lua or mu.yml) and the
-- templates it generates, without calling AWS and without writing anything.
--
-- Every problem is printed on stderr, one line each
-- ("mu.yml:12:7: environments[1].cluster.maxSize: expected an integer, got 'five'").
-- Exit status: 0 valid (warnings allowed unless --strict), 1 template
-- problems (cfn checks, cross-stack imports; with --schemas also the registry
-- schemas), 2 invalid configuration or none found.  On success stdout gets one summary line, or the
-- whole model with --print.
-- ctx.stdout / ctx.stderr (file-like) replace io.stdout / io.stderr (tests).
local config = require "lumu.config"

local M = {
  summary = "check lumu.lua or mu.yml and the templates it makes, without AWS or writing",
  usage = "lumu validate [-c FILE] [-n NAMESPACE] [--strict] [--print] [--schemas DIR] [--config-only]",
  help = [[
Loads the configuration (-c FILE, else lumu.lua, else mu.yml in the current
directory), fills in mu's defaults and reports every problem, one per line,
as FILE:LINE[:COL]: KEY.PATH: message.  Then generates every stack's template
in memory (as `lumu synth` would, writing nothing) and checks them: targets
of Ref/GetAtt/Sub, cycles, limits, cross-stack imports, and with --schemas DIR
every resource against the CloudFormation registry schemas in DIR.
Exit status 0 when valid, 1 on template problems, 2 on configuration errors.]],
  options = {
    { "-c", "--config", arg = "FILE", desc = "configuration file (default: lumu.lua or mu.yml)" },
    { "-n", "--namespace", arg = "NAMESPACE", desc = "namespace (wins over MU_NAMESPACE and the file)" },
    { "--strict", desc = "treat warnings as errors" },
    { "--print", desc = "print the validated model (with defaults) on stdout" },
    { "--schemas", arg = "DIR", desc = "also check resources against the registry schemas in DIR" },
    { "--config-only", desc = "check the configuration only, not the templates" },
    { "-h", "--help", desc = "this help" },
  },
}

local function plural(n, word)
  return string.format("%d %s%s", n, word, n == 1 and "" or "s")
end

-- The model without underscore keys, for --print.
local function public(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do
    if not (type(k) == "string" and k:sub(1, 1) == "_") then out[k] = public(x, seen) end
  end
  return out
end

function M.run(ctx, args, opts)
  local out = ctx and ctx.stdout or io.stdout
  local err = ctx and ctx.stderr or io.stderr
  if #args > 0 then
    return nil, "validate: unexpected argument '" .. args[1] .. "' (use -c FILE)", 2
  end
  local path = opts.config
  if not path then
    local found, ferr = config.find(".")
    if not found then return nil, "validate: " .. ferr, 2 end
    path = found
  end
  local checker
  if opts.schemas then
    local c, cerr = require("lumu.cfn").schema.open(opts.schemas)
    if not c then return nil, "validate: --schemas: " .. tostring(cerr), 2 end
    checker = c
  end
  local model, problems = config.load(path, { namespace = opts.namespace })
  local errors, warnings = 0, 0
  for _, p in ipairs(problems or {}) do
    err:write(config.format_error(p), "\n")
    if p.severity == "warning" then warnings = warnings + 1 else errors = errors + 1 end
  end
  if not model then
    return nil, string.format("validate: %s: %s", path, plural(errors, "error")
      .. (warnings > 0 and (", " .. plural(warnings, "warning")) or "")), 2
  end
  local nstacks
  if not opts.config_only then
    local synth = require "lumu.synth"
    local stacks, report = synth.plan(model, { schemas = checker, fetch = false })
    for _, w in ipairs(report.warnings) do
      err:write("lumu: warning: ", (w.key and w.key ~= "") and (w.key .. ": ") or "", w.message, "\n")
      warnings = warnings + 1
    end
    for _, e in ipairs(report.errors) do err:write(synth.format_diag(e), "\n") end
    if #report.errors > 0 then
      return nil, string.format("validate: %s: %s", path, plural(#report.errors, "error")), 2
    end
    if report.problems > 0 then
      for _, d in ipairs(stacks) do
        for _, p in ipairs(d.problems or {}) do
          err:write(d.name, ": ", p.path ~= "" and (p.path .. ": ") or "", p.message, "\n")
        end
      end
      return nil, string.format("validate: %s: %s", path, plural(report.problems, "template problem")), 1
    end
    nstacks = #stacks
  end
  if opts.strict and warnings > 0 then
    return nil, string.format("validate: %s: %s (--strict)", path, plural(warnings, "warning")), 2
  end
  if opts.print then
    out:write(require("lumu.pretty").format(public(model), { depth = 32 }), "\n")
  else
    local pipelines = 0
    for _, s in ipairs(model.services) do
      if s.pipeline then pipelines = pipelines + 1 end
    end
    out:write(string.format("%s: ok (namespace %s, %s, %s, %s%s%s)\n", path, model.namespace,
      plural(#model.environments, "environment"), plural(#model.services, "service"),
      plural(pipelines, "pipeline"), nstacks and (", " .. plural(nstacks, "stack")) or "",
      warnings > 0 and (", " .. plural(warnings, "warning")) or ""))
  end
  return 0
end

return M
