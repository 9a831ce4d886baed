--- `lumu help [COMMAND]`: the list of commands, or one command's usage.
local cli = require "lumu.cli"

local M = {
  summary = "show help for lumu or one of its commands",
  usage = "lumu help [COMMAND]",
  options = {
    { "-h", "--help", desc = "this help" },
  },
}

local function option_lines(cmd)
  local out = {}
  for _, o in ipairs(cmd.options or {}) do
    local names = table.concat(o, ", ")
    if o.arg then names = names .. " " .. o.arg end
    out[#out + 1] = string.format("  %-28s %s", names, o.desc or "")
  end
  return out
end

function M.run(_, args)
  local name = args[1]
  local w = io.stdout
  if name then
    local cmd = cli.command(name)
    if not cmd then
      local s = cli.suggest(name, cli.names())
      return nil, string.format("help: unknown command '%s'%s", name,
        s and (" (did you mean '" .. s .. "'?)") or ""), cli.EXIT.usage
    end
    w:write("Usage: ", cmd.usage or ("lumu " .. name), "\n\n", cmd.summary or "", "\n")
    if cmd.help then w:write("\n", cmd.help, "\n") end
    local lines = option_lines(cmd)
    if #lines > 0 then w:write("\nOptions:\n", table.concat(lines, "\n"), "\n") end
    return 0 -- an exit code: `lumu CMD --help` returns this as is
  end
  w:write([[
lumu: describe and run an AWS delivery platform as Lua scripts.

Usage: lumu [--debug] [--no-color] COMMAND [args...]
       lumu [-e CHUNK] [-l MOD] [-i] [-v] [-E] [-W] [FILE [args...] | -]

Commands:
]])
  for _, n in ipairs(cli.names()) do
    local ok, cmd = pcall(cli.command, n)
    w:write(string.format("  %-12s %s\n", n, ok and cmd.summary or "(failed to load: see --debug)"))
  end
  w:write([[

Global flags:
  --debug        show tracebacks with errors (also LUMU_DEBUG=1)
  --no-color     no colour in output (also NO_COLOR)
  -h, --help     this help;  --version  the version

Exit codes: 0 ok, 1 failure, 2 usage or config error, 3 internal error,
130 interrupted.  'lumu help COMMAND' shows a command's options.
]])
  return 0
end

return M
