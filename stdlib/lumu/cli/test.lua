--- `lumu test [PATH...]`: runs busted-style specs (files matching *_spec.lua).
-- Tests tagged #live (checks against deployed stacks, lumu.test.infra) run
-- only with --live (or when --tags names live).  -c FILE names the project
-- config: lumu.test.infra.project() loads it, and without PATH the specs
-- come from spec/ next to it.
local cli = require "lumu.cli"
local test = require "lumu.test"

local M = {
  summary = "run busted-style Lua specs (*_spec.lua)",
  usage = "lumu test [options] [PATH...]",
  help = [[
Runs every spec file found under each PATH (a file or a directory searched
recursively).  Without PATH: spec/ next to the -c config, else ./spec, else
./tests, else the current directory.  Infrastructure specs use
require "lumu.test.infra" (project(), resources, assert.security_group...);
tests tagged #live talk to AWS and run only with --live.
Exit status: failures + errors (at most 255); 0 when all pass.]],
  options = {
    { "-p", "--pattern", arg = "LUAPATTERN", desc = "spec file name pattern (default _spec%.lua$)" },
    { "--filter", arg = "LUAPATTERN", desc = "only tests whose full name matches" },
    { "--filter-out", arg = "LUAPATTERN", desc = "skip tests whose full name matches" },
    { "-t", "--tags", arg = "TAGS", desc = "only tests tagged #TAG (comma separated)" },
    { "--exclude-tags", arg = "TAGS", desc = "skip tests tagged #TAG (comma separated)" },
    { "-o", "--output", arg = "FORMAT", desc = "plain (default), tap or json" },
    { "-v", "--verbose", desc = "one line per test" },
    { "--live", desc = "also run tests tagged #live (they call AWS)" },
    { "-c", "--config", arg = "FILE", desc = "the project config for lumu.test.infra (default: found near the specs)" },
    { "-l", "--list", desc = "list the spec files found and exit" },
    { "-h", "--help", desc = "this help" },
  },
}

local function split(s)
  local t = {}
  for part in (s or ""):gmatch("[^,%s]+") do t[#t + 1] = part end
  return t
end

local function is_file(path)
  local f = io.open(path, "r")
  if not f then return false end
  local _, err = f:read(0) -- nil, "Is a directory" for directories
  f:close()
  return err == nil
end

-- Spec files under path, sorted.  Uses lumu.fs for directories.
local function find(path, pattern, out)
  local fs = require "lumu.fs"
  if fs.isdir(path) then
    local names = assert(fs.list(path))
    for _, name in ipairs(names) do
      if name:sub(1, 1) ~= "." then find(path .. "/" .. name, pattern, out) end
    end
  elseif path:match(pattern) then
    out[#out + 1] = path
  end
  return out
end

function M.run(ctx, args, opts)
  local output = opts.output or "plain"
  if output ~= "plain" and output ~= "tap" and output ~= "json" then
    return nil, "test: --output must be plain, tap or json, not '" .. output .. "'", cli.EXIT.usage
  end
  local pattern = opts.pattern or "_spec%.lua$"
  local paths = args
  if opts.config then
    local fs = require "lumu.fs"
    if not fs.isfile(opts.config) then
      return nil, "test: -c: no such config file: " .. opts.config, cli.EXIT.usage
    end
    require("lumu.test.infra").default_config = opts.config
    if #paths == 0 then
      local dir = fs.join(fs.dirname(opts.config), "spec")
      if fs.isdir(dir) then paths = { dir } end
    end
  end
  if #paths == 0 then
    local fs = require "lumu.fs"
    paths = { fs.isdir("spec") and "spec" or fs.isdir("tests") and "tests" or "." }
  end
  local files = {}
  for _, p in ipairs(paths) do
    if is_file(p) then
      files[#files + 1] = p -- an explicit file runs whatever its name
    else
      local fs = require "lumu.fs"
      if not fs.exists(p) then
        return nil, "test: no such file or directory: " .. p, cli.EXIT.usage
      end
      find(p, pattern, files)
    end
  end
  if opts.list then
    for _, f in ipairs(files) do io.stdout:write(f, "\n") end
    return 0
  end
  if #files == 0 then
    return nil, "test: no spec files found in " .. table.concat(paths, ", "), cli.EXIT.usage
  end
  local tags, exclude = split(opts.tags), split(opts.exclude_tags)
  local wants_live = opts.live
  for _, t in ipairs(tags) do
    if t == "live" then wants_live = true end
  end
  if not wants_live then exclude[#exclude + 1] = "live" end
  local r = test.runner {
    filter = opts.filter, filter_out = opts.filter_out,
    tags = tags, exclude_tags = exclude,
    output = output, verbose = opts.verbose, debug = ctx.debug,
  }
  for _, f in ipairs(files) do r:load_file(f) end
  local summary = r:run()
  return summary.exit_code
end

return M
