--- YAML loading and dumping (libyaml), with CloudFormation short forms.
--
-- local yaml = require "lumu.yaml"
--
-- yaml.load(string [, opts]) -> value [, pos] | nil, "NAME:line:col: message"
--   Returns the first document (json.null for an empty stream); later
--   documents are not parsed.
--   opts.filename  NAME in error messages (default "<string>")
--   opts.all       true: a list (json.array_mt) of every document
--   opts.positions true: also return `pos`, a weak-keyed table with, for every
--                  mapping/sequence table produced, pos[tbl] = {line=, col=,
--                  keys = {[key] = {line=, col=}}} (mappings, position of each
--                  key) or {line=, col=, items = {[i] = {line=, col=}}}
--                  (sequences).  Lines and columns are 1-based.
--   Values: mappings -> tables with json.object_mt, sequences -> json.array_mt
--   (shared with lumu.json, so json.encode(yaml.load(s)) keeps [] and {}).
--   Mapping keys are always strings, exactly as written ("1", "true").
--   Plain scalars follow the YAML 1.2 core schema: null ~ and empty ->
--   json.null; true/True/TRUE/false/... -> booleans; 12, -3, 0x1F, 0o17 ->
--   integers (decimals too big for 64 bits -> floats); 1.5, .5, 1e3, .inf,
--   -.Inf, .nan -> floats.  Decimal numbers with a leading zero (0123) stay
--   strings (account ids), as does everything else (yes/no/on/off too).
--   Quoted and block scalars are always strings.  !!str !!int !!float !!bool
--   !!null !!seq !!map are honoured; `!` forces a string.
--   Anchors, aliases and `<<` merge keys (a mapping or a list of mappings; keys
--   of the mapping itself win, then earlier merge sources) are supported.
--   An alias shares the anchored table.  Aliases may add at most 1,000,000
--   nodes to a document (billion laughs guard); nesting is limited to 1000
--   levels, counting through aliases.
--   CloudFormation short forms become long forms: !Ref X -> {Ref="X"},
--   !Condition X -> {Condition="X"}, !GetAtt A.B.C -> {["Fn::GetAtt"]={"A","B.C"}}
--   (a sequence is kept as is), and !Base64 !Cidr !Equals !FindInMap !GetAZs
--   !If !ImportValue !Join !Length !Not !And !Or !Select !Split !Sub
--   !Transform !ToJsonString -> {["Fn::X"] = value} (a scalar value is a string).
--   Errors returned as nil, msg: syntax errors, unknown tags, duplicate keys,
--   non-scalar keys, undefined aliases, bad merges, the limits above.  A
--   non-string argument or a bad option raises.
--
-- yaml.dump(value [, opts]) -> string
--   Block style, ending with "\n".  Same value rules and errors as
--   json.encode (raises "yaml.dump: <path>: <why>"), except that NaN and
--   infinities are written as .nan / .inf / -.inf.  Keys sorted (unless
--   opts.sort_keys == false), after the keys a `__jsonorder` metafield lists
--   (json.ordered).  json.null -> null; empty arrays/objects -> [] / {}.
--   Strings are quoted whenever a plain scalar would read back as something
--   else ("true", "1", "null", "", "yes", "0123", leading/trailing spaces,
--   ": ", " #", leading indicators ...); multi-line strings use `|` blocks.
--   Integral floats keep a ".0".  yaml.load(yaml.dump(v)) equals v.
--   opts.cfn_short true: {Ref=x} -> !Ref x, {Condition=x} -> !Condition x,
--                  {["Fn::GetAtt"]={"a","b"}} -> !GetAtt a.b, {["Fn::X"]=v} -> !X v
--                  (for the functions above, v a string or table)
--   opts.indent    2..9 (default 2)
--   opts.width     preferred line width (default -1: never fold)
--
-- yaml.null, yaml.array_mt, yaml.object_mt are json.null, json.array_mt and
-- json.object_mt.
local core = require "lumu._yaml"
local json = require "lumu.json"

local M = {
  load = core.load,
  dump = core.dump,
  null = core.null,
  array_mt = core.array_mt,
  object_mt = core.object_mt,
  libyaml_version = core.libyaml_version,
}

assert(M.null == json.null, "lumu.yaml and lumu.json disagree on null")

--- Reads and loads a file: yaml.load_file(path [, opts]) -> value [, pos] | nil, err
-- (opts.filename defaults to path).
function M.load_file(path, opts)
  if type(path) ~= "string" then
    error(string.format("bad argument #1 to 'load_file' (string expected, got %s)", type(path)), 2)
  end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text, rerr = f:read("a")
  f:close()
  if not text then return nil, path .. ": " .. tostring(rerr) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.filename == nil then o.filename = path end
  return core.load(text, o)
end

return M
