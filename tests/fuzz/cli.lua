--- fuzz_cli driver: lumu's command-line dispatch (lumu.cli.main: global
-- flags, lua.c switches, command lookup and suggestions, each command's
-- option parsing, mu's global flags and subcommand groups) without running
-- any command.  The input is argv[1..] separated by NUL bytes.
--
-- Every command's `run` is replaced by a stub that checks what the parser
-- hands it; for project.command commands the inner function (upvalue `run`)
-- is replaced so their own parsing still runs, and for groups each
-- subcommand's run.  `help` runs for real (output discarded); lua.c mode
-- (lumu.cli.run.luamain) is stubbed.
local util = dofile((...) .. "/util.lua")
local cli = require "lumu.cli"

local function check_args(pos, opts)
  if type(pos) ~= "table" or type(opts) ~= "table" then error("run got bad args/opts") end
  for i, a in ipairs(pos) do util.assert_string(a, "positional argument " .. i) end
  for k, v in pairs(opts) do
    if type(k) ~= "string" then error("option key of type " .. type(k)) end
    if type(v) == "table" then
      for i, x in ipairs(v) do util.assert_string(x, "option " .. k .. "[" .. i .. "]") end
    elseif type(v) ~= "string" and type(v) ~= "boolean" then
      error("option " .. k .. " is a " .. type(v))
    end
  end
end

local function stub(_, pos, opts)
  check_args(pos or {}, opts or {})
  return 0
end

local function upvalue(f, name)
  for i = 1, math.huge do
    local n, v = debug.getupvalue(f, i)
    if n == nil then return nil end
    if n == name then return i, v end
  end
end

for _, name in ipairs(cli.names()) do
  local cmd = cli.command(name)
  if name == "help" then -- luacheck: ignore
  elseif cmd.subcommands then
    for _, sub in ipairs(cmd.subcommands) do sub.run = stub end
  else
    local i, inner = upvalue(cmd.run, "run")
    if i and upvalue(cmd.run, "def") and type(inner) == "function" then
      debug.setupvalue(cmd.run, i, stub) -- project.command: keep its parsing
    else
      cmd.run = stub
    end
  end
end
require("lumu.cli.run").luamain = function() return 0 end

-- output goes nowhere
io.output("/dev/null")
io.stdout, io.stderr = util.sink, util.sink
print = function() end -- luacheck: ignore

local CODES = { [0] = true, [1] = true, [2] = true, [130] = true }

return function(s)
  local argv = util.split0(s)
  argv[0] = "lumu"
  local rc = cli.main(argv, { noenv = false })
  if math.type(rc) ~= "integer" or not CODES[rc] then
    error("exit code " .. tostring(rc) .. " for argv " .. table.concat(argv, " | "))
  end
end
