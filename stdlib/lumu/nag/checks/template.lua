--- Built-in nag rules on template sections other than Resources: secrets in
-- Parameters.  Rules of the pseudo type "Parameter" get check(parameter,
-- name, template, ctx).
local util = require "lumu.nag.util"

local null = require("lumu.json").null

local function aws_typed(p)
  return type(p.Type) == "string" and p.Type:find("^AWS::") ~= nil
end

local function has_default(p)
  local d = p.Default
  return d ~= nil and d ~= null and d ~= ""
end

return {
  {
    id = "F34", severity = "failure",
    message = "Secret-looking parameter is not NoEcho",
    reason = "Without NoEcho the value typed at deploy time is shown in the console, "
      .. "DescribeStacks and change sets; mark password/secret/token/key parameters NoEcho (or "
      .. "better, pass a Secrets Manager reference).",
    types = { "Parameter" },
    check = function(p, name)
      if type(p) ~= "table" or not util.secret_name(name) or aws_typed(p) then return nil end
      if util.truthy(p.NoEcho) then return nil end
      return { { path = { "NoEcho" }, detail = "parameter " .. name } }
    end,
  },
  {
    id = "F35", severity = "failure",
    message = "Secret parameter has a Default value",
    reason = "A default for a NoEcho or secret-looking parameter puts the secret in the template "
      .. "itself, in version control and in every copy of the template.",
    types = { "Parameter" },
    check = function(p, name)
      if type(p) ~= "table" or not has_default(p) or aws_typed(p) then return nil end
      if util.truthy(p.NoEcho) or util.secret_name(name) then
        return { { path = { "Default" }, detail = "parameter " .. name } }
      end
    end,
  },
}
