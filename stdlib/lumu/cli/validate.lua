--- `lumu validate [-c FILE] [-n NAMESPACE] [--strict] [--print]`: checks the
-- configuration (lumu.lua or mu.yml) without calling AWS.
--
-- Every problem is printed on stderr, one line each
-- ("mu.yml:12:7: environments[1].cluster.maxSize: expected an integer, got 'five'").
-- Exit status: 0 valid (warnings allowed unless --strict), 2 invalid or no
-- configuration found.  On success stdout gets one summary line, or the
-- whole model with --print.
-- ctx.stdout / ctx.stderr (file-like) replace io.stdout / io.stderr (tests).
local config = require "lumu.config"

local M = {
  summary = "check lumu.lua or mu.yml (types, names, references) without calling AWS",
  usage = "lumu validate [-c FILE] [-n NAMESPACE] [--strict] [--print]",
  help = [[
Loads the configuration (-c FILE, else lumu.lua, else mu.yml in the current
directory), fills in mu's defaults and reports every problem, one per line,
as FILE:LINE[:COL]: KEY.PATH: message.  Exit status 0 when valid, 2 otherwise.]],
  options = {
    { "-c", "--config", arg = "FILE", desc = "configuration file (default: lumu.lua or mu.yml)" },
    { "-n", "--namespace", arg = "NAMESPACE", desc = "namespace (wins over MU_NAMESPACE and the file)" },
    { "--strict", desc = "treat warnings as errors" },
    { "--print", desc = "print the validated model (with defaults) on stdout" },
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
    out:write(string.format("%s: ok (namespace %s, %s, %s, %s%s)\n", path, model.namespace,
      plural(#model.environments, "environment"), plural(#model.services, "service"),
      plural(pipelines, "pipeline"), warnings > 0 and (", " .. plural(warnings, "warning")) or ""))
  end
  return 0
end

return M
