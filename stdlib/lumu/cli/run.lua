--- `lumu run FILE [args...]`, `lumu FILE.lua [args...]` and the lua.c-style
-- switches (-e, -l, -i, -v, -E, -W, -, --), run the way lua(1) runs them:
-- LUA_INIT first (unless -E), then switches in order, then the script with
-- `arg` and `...`, then the REPL for -i.
local host = require "lumu._host"
local cli = require "lumu.cli"

local M = {
  summary = "run a Lua script (also: lumu FILE.lua, lumu -e CHUNK, lumu -)",
  usage = "lumu run FILE [args...]",
  help = [==[
Runs FILE as a Lua 5.4 chunk with lumu's modules available.  The script gets
its arguments in the global table `arg` (arg[0] = FILE) and as `...`.
FILE '-' reads the script from standard input.

lua(1)-compatible forms:
  lumu [switches] [FILE [args...]]
    -e CHUNK   run CHUNK               -l MOD    require MOD into global MOD
    -l G=MOD   require MOD into G      -i        REPL after the script
    -v         print the version       -E        ignore LUA_* environment variables
    -W         turn warnings on        --        stop handling switches
With no arguments: the REPL when stdin is a terminal, else the script on stdin.
LUA_INIT_5_4 (or LUA_INIT) runs first: '@FILE' runs a file, else a chunk.]==],
  raw = true,
}

local function report(ctx, err)
  err = tostring(err)
  if err:find("interrupted!", 1, true) then
    cli.errorf("interrupted")
    return cli.EXIT.interrupted
  end
  io.stderr:write("lumu: ", cli.message(err, ctx.debug), "\n")
  return cli.EXIT.failure
end

-- Runs a loaded chunk (or reports the load error).  Returns an exit code or
-- nil on success.
local function docall(ctx, fn, loaderr, ...)
  if not fn then return report(ctx, loaderr) end
  local ok, err = host.docall(fn, ...)
  if not ok then return report(ctx, err) end
  return nil
end

local function run_init(ctx)
  if ctx.noenv then return nil end
  local name = "LUA_INIT_5_4"
  local init = os.getenv(name)
  if not init then
    name = "LUA_INIT"
    init = os.getenv(name)
  end
  if not init then return nil end
  if init:sub(1, 1) == "@" then
    return docall(ctx, loadfile(init:sub(2)))
  end
  return docall(ctx, load(init, "=" .. name))
end
M.run_init = run_init

local function print_version()
  io.stdout:write(string.format("lumu %s (%s)\n", require("lumu.version").version, _VERSION))
  io.stdout:flush()
end

-- Builds the global `arg` table the way lua.c's createargtable does:
-- arg[0] = script, negative = interpreter and switches, positive = script
-- arguments; without a script (script == nil) arg[0] is the program name and
-- every argument is positive.
local function make_arg(argv, script)
  script = script or 0
  local t = {}
  for i = 0, #argv do t[i - script] = argv[i] end
  return t
end
M.make_arg = make_arg

-- Runs the script: argv[script] is its name ("-" = stdin, unless it came
-- after "--"); `...` are the positive entries of the global `arg` table as
-- it is now (LUA_INIT and -e may have changed it, as with lua.c).
local function run_script(ctx, argv, script)
  local path = argv[script]
  local fn, err
  if path == "-" and argv[script - 1] ~= "--" then
    fn, err = loadfile(nil) -- stdin, chunk name "=stdin", '#' line skipped
  else
    fn, err = loadfile(path)
  end
  if not fn then return report(ctx, err) end
  local args = _G.arg
  if type(args) ~= "table" then return report(ctx, "'arg' is not a table") end
  return docall(ctx, fn, nil, table.unpack(args, 1, #args))
end

local function stdin_is_tty()
  return host.isatty(0)
end

--- lua.c's main flow.  Returns the exit code.
function M.luamain(ctx)
  local argv, script = ctx.argv, ctx.script_index
  if argv[script] == "--" then script = script + 1 end -- lua.c: script follows '--'
  if argv[script] == nil then script = nil end
  local has = {}
  for _, s in ipairs(ctx.switches) do has[s[1]] = true end
  if has["-v"] or has["-i"] then print_version() end -- lua.c: -i implies -v
  _G.arg = make_arg(argv, script) -- before LUA_INIT, like lua.c
  local code = run_init(ctx)
  if code then return code end
  for _, s in ipairs(ctx.switches) do
    if s[1] == "-e" then
      code = docall(ctx, load(s[2], "=(command line)"))
    elseif s[1] == "-l" then
      local g, mod = s[2]:match("^([^=]+)=(.+)$")
      g, mod = g or s[2], mod or s[2]
      local ok, res = host.docall(require, mod) -- called directly: no position in its errors
      if ok then
        _G[g] = res
      else
        code = report(ctx, res)
      end
    elseif s[1] == "-W" then
      host.setwarn(true) -- in order, like lua.c's runargs
    end
    if code then return code end
  end
  if script then
    code = run_script(ctx, argv, script)
    if code then return code end
  end
  if has["-i"] then
    return require("lumu.repl").run(ctx)
  elseif not script and not (has["-e"] or has["-v"]) then
    if stdin_is_tty() then
      print_version()
      return require("lumu.repl").run(ctx)
    end
    code = docall(ctx, loadfile(nil)) -- the script on stdin
    if code then return code end
  end
  return cli.EXIT.ok
end

function M.run(ctx, args)
  if #args == 0 then
    return nil, "run: missing FILE (see 'lumu help run')", cli.EXIT.usage
  end
  -- `lumu run FILE args...` behaves like `lumu FILE args...`
  local argv = { [0] = ctx.argv[0] }
  for i = 1, ctx.script_index do argv[i] = ctx.argv[i] end
  local n = #argv
  for i, a in ipairs(args) do argv[n + i] = a end
  local sub = setmetatable({ argv = argv, script_index = n + 1, switches = {} }, { __index = ctx })
  return M.luamain(sub)
end

return M
