--- `lumu init [DIR] [--mu] [-e] [-P PORT] [--name NAME] [-f]`: writes a
-- starter project (mu's `init`): lumu.lua (or mu.yml with --mu) with one
-- service on PORT (default 8080) serving /*, and with -e the acceptance
-- and production environments; buildspec.yml (the build), buildspec-test.yml
-- and buildspec-prod.yml (smoke tests of $BASE_URL run by the pipeline);
-- spec/lumu_spec.lua, which checks the configuration (`lumu test
-- spec/lumu_spec.lua`).  Nothing is overwritten without --force: an
-- existing configuration stops it (exit 1, nothing written); other
-- existing files are kept (as mu does).
-- stdout: one line per file ("wrote X" / "kept X").  Exit 0, 1, 2 (usage).
-- (Named init_project: stdlib/lumu/cli/init.lua would embed as lumu.cli.)
local fs = require "lumu.fs"

local M = {
  summary = "write a starter lumu.lua (or mu.yml), buildspecs and a spec file",
  usage = "lumu init [DIR] [--mu] [-e] [-P PORT] [--name NAME] [-f]",
  help = [[
Writes, in DIR (default: the current directory): lumu.lua (mu.yml with --mu)
describing one service that listens on PORT (default 8080) and serves /*,
plus with -e an acceptance and a production environment (ECS Fargate);
buildspec.yml, buildspec-test.yml, buildspec-prod.yml for the pipeline; and
spec/lumu_spec.lua checking the configuration ('lumu test spec/lumu_spec.lua').
Existing files are never overwritten without -f/--force: an existing
configuration stops init, other existing files are kept.]],
  options = {
    { "--mu", desc = "write mu.yml instead of lumu.lua" },
    { "-e", "--env", desc = "add acceptance and production environments" },
    { "-P", "--port", arg = "PORT", files = false, desc = "the service's port (default 8080)" },
    { "--name", arg = "NAME", files = false, desc = "the service's name (default: the directory's)" },
    { "-f", "--force", desc = "overwrite existing files" },
    { "-h", "--help", desc = "this help" },
  },
}

local function lua_config(name, port, envs)
  local lines = {
    "-- lumu configuration (written by `lumu init`).  `lumu synth` shows the",
    "-- CloudFormation it makes, `lumu diff` what would change, `lumu up` deploys.",
    "",
  }
  if envs then
    lines[#lines + 1] = "environment { name = \"acceptance\", provider = \"ecs-fargate\" }"
    lines[#lines + 1] = "environment { name = \"production\", provider = \"ecs-fargate\" }"
    lines[#lines + 1] = ""
  end
  for _, l in ipairs({
    "service {",
    string.format("  name = %q,", name),
    string.format("  port = %d,", port),
    "  pathPatterns = { \"/*\" },",
    "}",
    "",
    "-- A pipeline building and deploying it on every push (GitHub through a",
    "-- CodeStar connection; see `lumu help pipeline`):",
    "-- pipeline {",
    "--   source = { repo = \"owner/repo\", branch = \"main\", connectionArn = \"arn:aws:...\" },",
    "-- }",
  }) do lines[#lines + 1] = l end
  return table.concat(lines, "\n") .. "\n"
end

local function mu_config(name, port, envs)
  local lines = { "# mu configuration (written by `lumu init --mu`); lumu reads it as it is." }
  if envs then
    for _, l in ipairs({ "environments:", "  - name: acceptance", "    provider: ecs-fargate",
      "  - name: production", "    provider: ecs-fargate" }) do lines[#lines + 1] = l end
  end
  for _, l in ipairs({
    "service:",
    "  name: " .. name,
    "  port: " .. port,
    "  pathPatterns:",
    "    - /*",
    "  # pipeline:",
    "  #   source:",
    "  #     repo: owner/repo",
    "  #     branch: main",
  }) do lines[#lines + 1] = l end
  return table.concat(lines, "\n") .. "\n"
end

local BUILDSPEC = [[
version: 0.2
phases:
  build:
    commands:
      - echo "build and unit-test the service here"
artifacts:
  files:
    - '**/*'
]]

local function spec_file(config)
  return ([[
-- Checks the lumu configuration: run `lumu test spec/lumu_spec.lua` from the
-- project directory (written by `lumu init`).
local config = require "lumu.config"
local synth = require "lumu.synth"

local PATH = %q

describe("the lumu configuration", function()
  it("loads without errors", function()
    local model, problems = config.load(PATH)
    assert.is_truthy(model, problems and problems[1] and config.format_error(problems[1]))
  end)

  it("generates every stack without template problems", function()
    local model = assert(config.load(PATH))
    local stacks, report = synth.plan(model, {})
    assert.are.equal(0, #report.errors, report.errors[1] and synth.format_diag(report.errors[1]))
    assert.are.equal(0, report.problems)
    assert.is_true(#stacks > 0)
  end)
end)
]]):format(config)
end

function M.run(ctx, args, opts)
  local out = ctx and ctx.stdout or io.stdout
  if #args > 1 then return nil, "init: unexpected argument '" .. args[2] .. "'", 2 end
  local dir = args[1] or "."
  local port = math.tointeger(tonumber(opts.port or "8080"))
  if not port or port < 1 or port > 65535 then
    return nil, "init: --port must be a port number (1-65535), got '" .. tostring(opts.port) .. "'", 2
  end
  local name = opts.name
  if not name then
    name = fs.basename(fs.abspath(dir)):lower():gsub("[^%w%-]+", "-"):gsub("^%-+", ""):gsub("%-+$", "")
    if name == "" or not name:match("^%a") then name = "service" end
  end
  if not name:match("^[A-Za-z][A-Za-z0-9%-]*$") or #name > 64 then
    return nil, "init: invalid service name '" .. name .. "' (letters, digits and '-', starting with a letter)", 2
  end
  if not fs.isdir(dir) then
    local ok, err = fs.mkdir(dir)
    if not ok then return nil, "init: " .. tostring(err), 1 end
  end
  local cfgname = opts.mu and "mu.yml" or "lumu.lua"
  local files = {
    { cfgname, opts.mu and mu_config(name, port, opts.env) or lua_config(name, port, opts.env), config = true },
    { "buildspec.yml", BUILDSPEC },
    { "buildspec-test.yml", require("lumu.gen.buildspec").default_test("acceptance") },
    { "buildspec-prod.yml", require("lumu.gen.buildspec").default_test("production") },
    { "spec/lumu_spec.lua", spec_file(cfgname) },
  }
  local cfgpath = fs.join(dir, cfgname)
  if fs.exists(cfgpath) and not opts.force then
    return nil, "init: " .. cfgpath .. " exists: nothing written (use --force to overwrite)", 1
  end
  local other = opts.mu and "lumu.lua" or "mu.yml"
  if fs.exists(fs.join(dir, other)) and not opts.force then
    return nil, "init: " .. fs.join(dir, other) .. " exists (lumu would read it first or instead): nothing written"
      .. " (use --force to write " .. cfgname .. " anyway)", 1
  end
  for _, f in ipairs(files) do
    local path = fs.join(dir, f[1])
    if fs.exists(path) and not opts.force then
      out:write("kept ", path, "\n")
    else
      local parent = fs.dirname(path)
      if not fs.isdir(parent) then
        local ok, err = fs.mkdir(parent)
        if not ok then return nil, "init: " .. tostring(err), 1 end
      end
      local ok, err = fs.write(path, f[2])
      if not ok then return nil, "init: " .. tostring(err), 1 end
      out:write("wrote ", path, "\n")
    end
  end
  return 0
end

return M
