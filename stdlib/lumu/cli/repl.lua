--- `lumu repl`: the interactive Lua prompt, with a one-line banner on stderr.
local cli = require "lumu.cli"

return {
  summary = "interactive Lua prompt with lumu's modules (also: lumu -i)",
  usage = "lumu repl [-E]",
  help = [[
Reads Lua lines, runs them and prints their values (tables pretty-printed).
A line is tried as an expression first, then as a statement; an unfinished
statement continues on the next line ('>>' prompt).

On a terminal: line editing, TAB completion of globals and fields
(`string.fo<TAB>`), history in ~/.lumu_history (LUMU_HISTORY=FILE to change
it, LUMU_HISTORY= for none).  Ctrl-C interrupts the running chunk or
abandons the line being typed; Ctrl-D on an empty line exits.
LUA_INIT_5_4 / LUA_INIT run first, as for lumu(1) without arguments.
Prompts: set _PROMPT and _PROMPT2.]],
  options = {
    { "-E", desc = "ignore LUA_INIT (LUA_PATH needs lumu -E -i)" },
    { "-h", "--help", desc = "this help" },
  },
  run = function(ctx, args, opts)
    if #args > 0 then
      return nil, "repl: unexpected argument '" .. args[1] .. "' (see 'lumu help repl')", cli.EXIT.usage
    end
    local run = require "lumu.cli.run"
    _G.arg = _G.arg or run.make_arg(ctx.argv or { [0] = "lumu" })
    if not (opts.E or ctx.noenv) then
      local code = run.run_init(ctx)
      if code then return code end
    end
    io.stderr:write(string.format("lumu %s (%s): Ctrl-D exits, Ctrl-C interrupts, 'lumu help repl' for more\n",
      require("lumu.version").version, _VERSION))
    return require("lumu.repl").run(ctx)
  end,
}
