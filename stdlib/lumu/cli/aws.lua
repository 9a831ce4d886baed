--- `lumu aws SERVICE OPERATION [options]`: calls any operation of the
-- embedded AWS models (through lumu.aws) and prints the result.
--
--   lumu aws                          lists the services
--   lumu aws SERVICE                  lists the service's operations (kebab-case)
--   lumu aws SERVICE OPERATION [--json-args JSON | --cli-input-json FILE]
--            [--region R] [--profile P] [--endpoint-url U] [--output json|yaml]
--            [--all-pages] [--debug]
-- OPERATION: kebab-case (describe-stacks), CamelCase or snake_case.
-- Parameters: a JSON object (--json-args) or a JSON file (--cli-input-json
-- FILE, file://FILE, or - for stdin), as the AWS CLI's --cli-input-json:
-- blobs are base64 text.  Output (stdout): the result as JSON (2-space
-- indent, keys sorted) or YAML, timestamps in ISO 8601, blobs in base64.
-- --all-pages follows the operation's paginator and prints a list of pages.
-- --debug logs every request/response line on stderr (never keys, tokens or
-- bodies).  Exit status: 0 ok; 1 the call failed (one line on stderr:
-- "lumu: cloudformation DescribeStacks: ValidationError: ... (HTTP 400,
-- request id ...)"); 2 usage errors: unknown service / operation (with a
-- suggestion), bad JSON, parameters that do not match the model.
-- ctx.stdout / ctx.stderr (file-like) replace io.stdout / io.stderr (tests).
local _aws = require "lumu._aws"

local M = {
  summary = "call any AWS API operation (lumu aws SERVICE OPERATION --json-args '{...}')",
  usage = "lumu aws [SERVICE [OPERATION]] [--json-args JSON | --cli-input-json FILE] [--region R] " ..
    "[--profile P] [--endpoint-url U] [--output json|yaml] [--all-pages] [--debug]",
  help = [[
Calls an operation of an AWS service with the credentials, region and
endpoint the AWS CLI would use, and prints the result as JSON (or YAML).
Without an operation it lists the service's operations; without a service it
lists the services.  Example:

  lumu aws cloudformation describe-stacks --json-args '{"StackName": "web"}'

Exit status: 0 ok, 1 the call failed (the AWS error on one line), 2 usage
error (unknown service or operation, parameters that do not match the
model).]],
  options = {
    { "--json-args", arg = "JSON", files = false, desc = "the parameters as a JSON object" },
    { "--cli-input-json", arg = "FILE", desc = "the parameters from a JSON file (- = stdin)" },
    { "--region", arg = "REGION", files = false, desc = "AWS region (default: AWS_REGION, the profile)" },
    { "--profile", arg = "PROFILE", files = false, desc = "AWS profile" },
    { "--endpoint-url", arg = "URL", files = false, desc = "endpoint URL (local stacks, proxies)" },
    { "-o", "--output", arg = "FORMAT", choices = { "json", "yaml" }, desc = "json (default) or yaml" },
    { "--all-pages", desc = "follow the paginator and print every page" },
    { "--debug", desc = "log requests and responses on stderr (no secrets)" },
    { "-h", "--help", desc = "this help" },
  },
  complete = _aws.services(),
}

local function kebab(name)
  local s = name:gsub("(%u+)(%u%l)", "%1_%2"):gsub("([%l%d])(%u)", "%1_%2")
  return (s:lower():gsub("_", "-"))
end
M.kebab = kebab

local function read_input(path, stdin)
  path = path:gsub("^file://", "")
  if path == "-" then
    return (stdin or io.stdin):read("a")
  end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

function M.run(ctx, args, opts)
  local out = ctx and ctx.stdout or io.stdout
  local errout = ctx and ctx.stderr or io.stderr
  local service, opname = args[1], args[2]
  if #args > 2 then return nil, "aws: unexpected argument '" .. args[3] .. "'", 2 end
  if not service then
    for _, s in ipairs(_aws.services()) do out:write(s, "\n") end
    return 0
  end
  local minfo, merr = _aws.model(service)
  if not minfo then
    -- an unknown service is a usage error; a model that does not load (bad
    -- data under LUMU_MODELS_DIR, no memory) is not
    return nil, "aws: " .. merr, merr:find("^unknown service") and 2 or 1
  end
  if not opname then
    for _, op in ipairs(_aws.operations(service)) do out:write(kebab(op), "\n") end
    return 0
  end
  local info, oerr, sug = _aws.operation(service, opname)
  if not info then
    if sug then
      return nil, string.format("aws: %s has no operation '%s' (did you mean '%s'?)", service, opname, kebab(sug)), 2
    end
    return nil, "aws: " .. oerr, 2
  end
  if opts.json_args and opts.cli_input_json then
    return nil, "aws: use either --json-args or --cli-input-json", 2
  end
  local json = require "lumu.json"
  local params = {}
  local text, where = opts.json_args, "--json-args"
  if opts.cli_input_json then
    local rerr
    text, rerr = read_input(opts.cli_input_json, ctx and ctx.stdin)
    if not text then return nil, "aws: --cli-input-json: " .. tostring(rerr), 2 end
    where = "--cli-input-json"
  end
  if text then
    local v, jerr = json.decode(text)
    if v == nil then return nil, string.format("aws: %s: invalid JSON: %s", where, jerr), 2 end
    if json.kind(v) ~= "object" then return nil, "aws: " .. where .. ": expected a JSON object", 2 end
    params = v
  end

  local aws = require "lumu.aws"
  local client, cerr = aws.client(service, {
    region = opts.region, profile = opts.profile, endpoint_url = opts.endpoint_url,
    base64_blobs = true, iso_timestamps = true,
    debug = opts.debug and function(line) errout:write("lumu aws: ", line, "\n") end or nil,
  })
  if not client then return nil, tostring(cerr), cerr.kind == "config" and 2 or 1 end
  -- parameters that do not match the model are usage errors (no request)
  local ok, verr = pcall(client._serialize, client, info, params, 1)
  if not ok then return nil, "aws: " .. tostring(verr):gsub("^[^:]*:%d+: ", ""), 2 end

  local result
  if opts.all_pages and _aws.paginator(service, info.name) then
    result = json.array()
    local pok, perr = pcall(function()
      for page in client:paginate(info.name, params) do result[#result + 1] = page end
    end)
    if not pok then
      if aws.is_error(perr) then return nil, tostring(perr), 1 end
      error(perr, 0)
    end
  else
    local err
    result, err = client:call(info.name, params)
    if not result then return nil, tostring(err), 1 end
  end
  if opts.output == "yaml" then
    out:write(require("lumu.yaml").dump(result))
  else
    out:write(json.encode(result, { pretty = true }))
  end
  return 0
end

return M
