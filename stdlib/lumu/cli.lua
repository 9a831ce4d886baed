--- lumu's command line: a table-driven dispatcher.
--
-- Commands are modules registered by name (`cli.register`); each returns a
-- table `{summary=, usage=, help=, options=, run=function(ctx, args, opts)}`.
-- `options` is a list of `{"-o", "--output", arg="FORMAT", desc=, multi=,
-- choices={...}, files=false}` (choices and files feed shell completion);
-- `complete = {...}` lists words completed for positional arguments; `raw =
-- true` passes the arguments unparsed.  Every command accepts -h/--help.
-- `run` returns nothing/true/0 on success, an integer exit code, or
-- `nil, message, exitcode` for an expected failure (printed as
-- `lumu: message`).  Anything it raises is an internal error (exit 3, with a
-- traceback under --debug).
--
-- Exit codes: 0 ok, 1 failure, 2 usage or config error, 3 internal error,
-- 130 interrupted (Ctrl-C).
local host = require "lumu._host"

local M = {}

M.EXIT = { ok = 0, failure = 1, usage = 2, internal = 3, interrupted = 130 }

-- name -> module name; loaded only when used, so start-up stays cheap.
M.commands = {
  version = "lumu.cli.version",
  help = "lumu.cli.help",
  run = "lumu.cli.run",
  repl = "lumu.cli.repl",
  completion = "lumu.cli.completion",
  test = "lumu.cli.test",
  validate = "lumu.cli.validate",
  synth = "lumu.cli.synth",
  nag = "lumu.cli.nag",
  aws = "lumu.cli.aws",
  metrics = "lumu.cli.metrics",
}
M.aliases = {}

--- Adds a command: `cli.register("synth", "lumu.cli.synth", {aliases={"s"}})`.
function M.register(name, modname, opts)
  assert(type(name) == "string" and type(modname) == "string", "register(name, modname)")
  M.commands[name] = modname
  for _, a in ipairs(opts and opts.aliases or {}) do M.aliases[a] = name end
end

-- mu's command surface (lumu.project holds the flags they share)
M.register("env", "lumu.cli.env", { aliases = { "environment" } })
M.register("svc", "lumu.cli.svc", { aliases = { "service" } })
M.register("db", "lumu.cli.db", { aliases = { "database" } })
M.register("pipeline", "lumu.cli.pipeline")
M.register("catalog", "lumu.cli.catalog", { aliases = { "cat" } })
M.register("org", "lumu.cli.org", { aliases = { "organization" } })
M.register("init", "lumu.cli.init_project")
M.register("purge", "lumu.cli.purge")
M.register("up", "lumu.cli.up")
M.register("diff", "lumu.cli.diff")

--- Loads the command table of `name` (or an alias), or nil.
function M.command(name)
  name = M.aliases[name] or name
  local modname = M.commands[name]
  if not modname then return nil end
  local cmd = require(modname)
  cmd.name = cmd.name or name
  return cmd
end

--- Sorted list of command names.
function M.names()
  local t = {}
  for name in pairs(M.commands) do t[#t + 1] = name end
  table.sort(t)
  return t
end

-- Levenshtein distance, for "did you mean".
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The closest of `candidates` to `word`, or nil when none is close.
function M.suggest(word, candidates)
  local best, bestd
  for _, c in ipairs(candidates) do
    local d = distance(word, c)
    if d <= math.max(2, #word // 3) and (not bestd or d < bestd) then best, bestd = c, d end
  end
  return best
end

-- Message helpers: stderr, one line each.
function M.errorf(fmt, ...) io.stderr:write("lumu: ", string.format(fmt, ...), "\n") end
function M.warnf(fmt, ...) io.stderr:write("lumu: warning: ", string.format(fmt, ...), "\n") end

--- Strips the traceback docall added, unless debugging.
function M.message(err, debug)
  err = tostring(err)
  if debug then return err end
  return (err:gsub("\nstack traceback:.*$", ""))
end

--- Parses `args` against a command's options spec.
-- spec: list of `{"-o", "--output", arg="DIR", desc="...", multi=true}`.
-- Returns `opts, positional` or `nil, message`.  `--` ends options; long
-- options take `--name=value` or `--name value`.
local HELP_OPTION = { "-h", "--help", desc = "show this command's help" }

function M.parse(spec, args, first)
  local byname = {}
  for _, o in ipairs(spec or {}) do
    for _, n in ipairs(o) do byname[n] = o end
  end
  if not byname["--help"] then
    byname["--help"] = HELP_OPTION
    if not byname["-h"] then byname["-h"] = HELP_OPTION end
  end
  local opts, pos = {}, {}
  local i = first or 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      table.move(args, i + 1, #args, #pos + 1, pos)
      break
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, inline = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      local o = byname[name]
      if not o then
        local names = {}
        for n in pairs(byname) do names[#names + 1] = n end
        table.sort(names)
        local s = M.suggest(name, names)
        return nil, string.format("unknown option '%s'%s", name,
          s and (" (did you mean '" .. s .. "'?)") or "")
      end
      local key = (o[2] or o[1]):gsub("^%-+", ""):gsub("%-", "_")
      local value = true
      if o.arg then
        if inline then
          value = inline
        else
          i = i + 1
          value = args[i]
          if value == nil then return nil, string.format("option '%s' needs a value (%s)", name, o.arg) end
        end
      elseif inline then
        return nil, string.format("option '%s' takes no value", name)
      end
      if o.multi then
        opts[key] = opts[key] or {}
        table.insert(opts[key], value)
      else
        opts[key] = value
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

-- Runs a command table with a context; maps its result to an exit code.
local function dispatch(ctx, cmd, args)
  local opts, pos
  if cmd.raw then -- the command parses its own arguments (`run`)
    opts, pos = {}, args
    if args[1] == "-h" or args[1] == "--help" then opts.help = true end
  else
    opts, pos = M.parse(cmd.options, args)
    -- mu's global flags given before the command, where the command has them
    if opts then
      for k, v in pairs(ctx.global_opts or {}) do
        if opts[k] == nil then opts[k] = v end
      end
    end
  end
  if not opts then
    M.errorf("%s: %s (see 'lumu help %s')", cmd.name, pos, cmd.name)
    return M.EXIT.usage
  end
  if opts.help then
    return require("lumu.cli.help").run(ctx, { cmd.name }) or M.EXIT.ok
  end
  local res = table.pack(host.docall(cmd.run, ctx, pos, opts, args))
  if not res[1] then
    local err = tostring(res[2])
    if err:find("interrupted!", 1, true) then
      M.errorf("interrupted")
      return M.EXIT.interrupted
    end
    M.errorf("internal error in '%s': %s", cmd.name, M.message(err, ctx.debug))
    if not ctx.debug then io.stderr:write("lumu: run again with --debug for a traceback\n") end
    return M.EXIT.internal
  end
  local r1, r2, r3 = res[2], res[3], res[4]
  if r1 == nil and r2 ~= nil then
    M.errorf("%s", M.message(r2, ctx.debug))
    return r3 or M.EXIT.failure
  elseif math.type(r1) == "integer" then
    return r1
  elseif r1 == false then
    return M.EXIT.failure
  end
  return M.EXIT.ok
end

-- The lua.c switches, in the order given: {"-e", chunk}, {"-l", mod}, ...
local LUA_SWITCHES = { ["-e"] = true, ["-l"] = true, ["-i"] = true, ["-v"] = true,
  ["-E"] = true, ["-W"] = true }

--- Entry point called by cmd/main.c with argv (argv[0] = program) and
-- `{noenv=bool}`.  Returns the exit code.
function M.main(argv, boot)
  local ctx = {
    argv = argv,
    noenv = boot and boot.noenv or false,
    debug = os.getenv("LUMU_DEBUG") ~= nil and os.getenv("LUMU_DEBUG") ~= "0",
    color = nil,
    progname = argv[0] or "lumu",
  }
  local switches = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--debug" then
      ctx.debug = true
    elseif a == "--no-color" then
      ctx.no_color = true
    elseif a == "-h" or a == "--help" then
      return dispatch(ctx, M.command("help"), argv[i + 1] and { argv[i + 1] } or {})
    elseif a == "--version" then
      return dispatch(ctx, M.command("version"), {})
    elseif LUA_SWITCHES[a] then
      if a == "-e" or a == "-l" then
        if argv[i + 1] == nil then
          M.errorf("'%s' needs an argument", a)
          return M.EXIT.usage
        end
        switches[#switches + 1] = { a, argv[i + 1] }
        i = i + 1
      else
        switches[#switches + 1] = { a }
      end
    elseif a:sub(1, 2) == "-e" or a:sub(1, 2) == "-l" then
      switches[#switches + 1] = { a:sub(1, 2), a:sub(3) } -- -eCHUNK, -lmod
    elseif #switches == 0 and a:sub(1, 1) == "-" and require("lumu.project").is_global(a) then
      -- mu's global flags before the command: `lumu -n ns env up x`
      local gopts, nexti = require("lumu.project").parse_prefix(argv, i)
      if not gopts then
        M.errorf("%s", nexti)
        return M.EXIT.usage
      end
      ctx.global_opts = gopts
      i = nexti - 1
    else
      break
    end
    i = i + 1
  end
  ctx.switches = switches
  ctx.script_index = i

  local a = argv[i]
  if a ~= nil and #switches == 0 and a:sub(1, 1) ~= "-" then
    local ok, cmd = pcall(M.command, a)
    if not ok then
      M.errorf("internal error: command '%s' failed to load: %s", a, M.message(cmd, ctx.debug))
      return M.EXIT.internal
    end
    if cmd then
      local rest = table.move(argv, i + 1, #argv, 1, {})
      return dispatch(ctx, cmd, rest)
    end
    if ctx.global_opts then
      M.errorf("unknown command '%s' after global options (see 'lumu help')", a)
      return M.EXIT.usage
    end
    if not a:find("[/.]") then
      local f = io.open(a, "r")
      if f then
        f:close()
      else
        local s = M.suggest(a, M.names())
        M.errorf("unknown command '%s'%s (see 'lumu help')", a,
          s and (" (did you mean '" .. s .. "'?)") or "")
        return M.EXIT.usage
      end
    end
  elseif a ~= nil and a ~= "-" and a ~= "--" and a:sub(1, 1) == "-" then
    local s = M.suggest(a, { "--help", "--version", "--debug", "--no-color", "-e", "-l", "-i", "-v", "-E", "-W" })
    M.errorf("unrecognized option '%s'%s (see 'lumu help')", a, s and (" (did you mean '" .. s .. "'?)") or "")
    return M.EXIT.usage
  end
  if ctx.global_opts then
    M.errorf("global options need a command: lumu [options] COMMAND ... (see 'lumu help')")
    return M.EXIT.usage
  end
  -- lua.c mode: switches, then script (or stdin / REPL).
  return require("lumu.cli.run").luamain(ctx)
end

return M
