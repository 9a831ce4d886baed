--- lumu's version, as built.
local host = require "lumu._host"
return {
  version = host.version,
  lua = _VERSION,
}
