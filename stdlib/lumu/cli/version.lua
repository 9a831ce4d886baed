--- `lumu version`: prints lumu's version and the Lua it embeds.
local v = require "lumu.version"

return {
  summary = "print lumu's version",
  usage = "lumu version [--output text|json]",
  options = {
    { "-o", "--output", arg = "FORMAT", choices = { "text", "json" }, desc = "text (default) or json" },
    { "-h", "--help", desc = "this help" },
  },
  run = function(_, _, opts)
    local fmt = opts.output or "text"
    if fmt == "json" then
      io.stdout:write(string.format('{"version":"%s","lua":"%s"}\n', v.version, v.lua))
    elseif fmt == "text" then
      io.stdout:write(string.format("lumu %s (%s)\n", v.version, v.lua))
    else
      return nil, string.format("version: --output must be text or json, not '%s'", fmt), 2
    end
  end,
}
