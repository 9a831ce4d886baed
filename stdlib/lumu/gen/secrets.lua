--- Database master passwords: names, generation and references (mu.md §5.9),
-- without plaintext anywhere in templates or stack parameters.
--
-- local secrets = require "lumu.gen.secrets"
--
-- secrets.password_parameter_name(ns, svc, env) -> string
--   mu's managed SSM parameter: "<ns>-database-<svc>-<env>-DatabaseMasterPassword".
-- secrets.generate_password([n [, random_bytes]]) -> string
--   n (default 32, 8..4096) characters from [A-Za-z0-9], drawn from
--   random_bytes (default lumu.crypto.random_bytes: OpenSSL's CSPRNG) with
--   rejection sampling (bytes >= 248 are discarded, so every character is
--   equally likely).  `db up` calls this before the database stack deploys
--   and stores the result as an SSM SecureString; the generators never see
--   it.  Raises on misuse, or when random_bytes returns something other
--   than a string of the requested length.
-- secrets.ssm_secure_ref(name [, version]) -> "{{resolve:ssm-secure:NAME[:VERSION]}}"
-- secrets.secretsmanager_ref(id [, json_key [, stage [, version_id]]]) ->
--   "{{resolve:secretsmanager:ID:SecretString:JSON_KEY[:STAGE[:VERSION_ID]]}}"
--   (json_key default "password").  Both raise on a bad name/id/version.
-- secrets.valid_ssm_name(name) -> true | nil, err   (SSM parameter names:
--   1-2048 chars of [A-Za-z0-9_.-/], at most 15 levels, not starting with
--   "aws"/"ssm" in any case)
-- secrets.ssm_arn(name_or_arn) -> string ARN | {Fn::Sub=...} in the stack's
--   partition, region and account.  An ARN is returned as given.
-- secrets.password_source(ns, svc_name, env_name, db) -> src | nil, err
--   Where a database's master password lives (db: config.database_for(...)):
--   * default (mu): store="ssm", managed=true, name = the managed parameter;
--   * db.masterPasswordSSMParam (mu): store="ssm", managed=false, name = the
--     user's parameter (name, /path/name or SSM parameter ARN);
--   * db.masterPasswordSecretArn (lumu): store="secretsmanager",
--     managed=false, id = the secret ARN (JSON with a "password" key);
--   * db.manageMasterUserPassword = true (lumu): store="rds": RDS creates and
--     rotates the secret itself (ManageMasterUserPassword).
--   src also has value_from (for an ECS `Secrets` entry; nil for "rds",
--   which depends on the stack output), resource (IAM Resource) and
--   kms_context ({key=, value=} of the KMS encryption context the store
--   uses, for a kms:Decrypt condition).
-- secrets.read_statements(src, value_resource) -> list of IAM statements
--   that let an ECS task execution role read the secret: ssm:GetParameters
--   or secretsmanager:GetSecretValue on the one resource, and kms:Decrypt
--   limited (kms:ViaService + encryption context) to that parameter or
--   secret, whatever key encrypts it.
-- secrets.is_plaintext_free(text, password) -> boolean   true when `text`
--   contains neither the password nor its JSON-escaped form (a test helper
--   the deployer also uses before writing dry-run files).
local M = {}

local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
local LIMIT = 248 -- 62 * 4: the largest multiple of 62 that fits a byte

local function argerr(n, fname, msg)
  error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

function M.password_parameter_name(ns, svc, env)
  for i, v in ipairs({ ns, svc, env }) do
    if type(v) ~= "string" or v == "" then argerr(i, "password_parameter_name", "non-empty string expected") end
  end
  return ns .. "-database-" .. svc .. "-" .. env .. "-DatabaseMasterPassword"
end

function M.generate_password(n, random_bytes)
  if n == nil then n = 32 end
  if math.type(n) ~= "integer" or n < 8 or n > 4096 then
    argerr(1, "generate_password", "length must be an integer from 8 to 4096")
  end
  if random_bytes == nil then random_bytes = require("lumu.crypto").random_bytes end
  if type(random_bytes) ~= "function" then argerr(2, "generate_password", "function expected") end
  local out = {}
  local rounds = 0
  while #out < n do
    rounds = rounds + 1
    if rounds > 64 then error("generate_password: the random source keeps returning rejected bytes", 2) end
    local want = (n - #out) + 8
    local bytes = random_bytes(want)
    if type(bytes) ~= "string" or #bytes ~= want then
      error("generate_password: the random source returned " .. type(bytes) .. " instead of " .. want
        .. " bytes", 2)
    end
    for i = 1, #bytes do
      local b = bytes:byte(i)
      if b < LIMIT then
        local k = b % 62 + 1
        out[#out + 1] = ALNUM:sub(k, k)
        if #out == n then break end
      end
    end
  end
  return table.concat(out)
end

function M.valid_ssm_name(name)
  if type(name) ~= "string" or name == "" then return nil, "empty SSM parameter name" end
  if #name > 2048 then return nil, "SSM parameter name longer than 2048 characters" end
  if not name:match("^[%w_%.%-/]+$") then
    return nil, "SSM parameter names use only letters, digits and _ . - /: '" .. name .. "'"
  end
  local bare = name:gsub("^/", ""):lower()
  if bare:sub(1, 3) == "aws" or bare:sub(1, 3) == "ssm" then
    return nil, "SSM parameter names must not start with 'aws' or 'ssm': '" .. name .. "'"
  end
  local _, levels = name:gsub("/", "")
  if levels > 15 then return nil, "SSM parameter name has more than 15 levels: '" .. name .. "'" end
  if name:find("//", 1, true) or (name:find("/", 2, true) and name:sub(1, 1) ~= "/") then
    return nil, "hierarchical SSM parameter names start with '/' and have no empty level: '" .. name .. "'"
  end
  return true
end

local SSM_ARN = "^arn:aws[%w%-]*:ssm:[%w%-]+:%d%d%d%d%d%d%d%d%d%d%d%d:parameter(/.+)$"
local SM_ARN = "^(arn:aws[%w%-]*:secretsmanager:[%w%-]+:%d%d%d%d%d%d%d%d%d%d%d%d:secret:)([%w/_+=%.@%-]+)$"

function M.ssm_arn(name)
  if type(name) ~= "string" then argerr(1, "ssm_arn", "string expected") end
  if name:match(SSM_ARN) then return name end
  local ok, err = M.valid_ssm_name(name)
  if not ok then argerr(1, "ssm_arn", err) end
  return { ["Fn::Sub"] = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/"
    .. name:gsub("^/", "") }
end

function M.ssm_secure_ref(name, version)
  if type(name) ~= "string" then argerr(1, "ssm_secure_ref", "string expected") end
  local pname = name:match(SSM_ARN) and name or nil
  if not pname then
    local ok, err = M.valid_ssm_name(name)
    if not ok then argerr(1, "ssm_secure_ref", err) end
  end
  if version == nil then return "{{resolve:ssm-secure:" .. name .. "}}" end
  local v = math.tointeger(tonumber(version))
  if not v or v < 1 or tostring(version):find("[^%d]") then
    argerr(2, "ssm_secure_ref", "version must be a positive integer, got " .. tostring(version))
  end
  return "{{resolve:ssm-secure:" .. name .. ":" .. v .. "}}"
end

local function valid_secret_id(id)
  if type(id) ~= "string" or id == "" then return false end
  if id:match(SM_ARN) then return true end
  return #id <= 512 and id:match("^[%w/_+=%.@%-]+$") ~= nil
end

function M.secretsmanager_ref(id, json_key, stage, version_id)
  if not valid_secret_id(id) then argerr(1, "secretsmanager_ref", "secret name or ARN expected, got " .. tostring(id)) end
  json_key = json_key or "password"
  for i, v in ipairs({ json_key, stage or "x", version_id or "x" }) do
    if type(v) ~= "string" or not v:match("^[%w_%.%-]+$") then
      argerr(i + 1, "secretsmanager_ref", "letters, digits, _ . - expected, got " .. tostring(v))
    end
  end
  local s = "{{resolve:secretsmanager:" .. id .. ":SecretString:" .. json_key
  if stage or version_id then s = s .. ":" .. (stage or "") end
  if version_id then s = s .. ":" .. version_id end
  return s .. "}}"
end

-- Secrets Manager ARNs end in "-" plus 6 random characters; a partial ARN
-- (without them) needs the wildcard in IAM policies.
local function secret_resource(arn)
  local head, name = arn:match(SM_ARN)
  if name:match("%-%w%w%w%w%w%w$") then return arn end
  return head .. name .. "-??????"
end

function M.password_source(ns, svc, env, db)
  if type(db) ~= "table" then argerr(4, "password_source", "database table expected") end
  local given = {}
  if db.masterPasswordSSMParam ~= nil and db.masterPasswordSSMParam ~= "" then given[#given + 1] = "masterPasswordSSMParam" end
  if db.masterPasswordSecretArn ~= nil and db.masterPasswordSecretArn ~= "" then given[#given + 1] = "masterPasswordSecretArn" end
  if db.manageMasterUserPassword == true then given[#given + 1] = "manageMasterUserPassword" end
  if #given > 1 then
    return nil, "give only one of " .. table.concat(given, ", "), given[2]
  end
  local which = given[1]
  if which == "masterPasswordSecretArn" then
    local arn = db.masterPasswordSecretArn
    if type(arn) ~= "string" or not arn:match(SM_ARN) then
      return nil, "expected a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME), got '"
        .. tostring(arn) .. "'", which
    end
    return {
      store = "secretsmanager", managed = false, id = arn,
      value_from = arn .. ":password::",
      resource = secret_resource(arn),
      kms_context = { key = "kms:EncryptionContext:SecretARN", value = secret_resource(arn) },
      service = "secretsmanager",
    }
  elseif which == "manageMasterUserPassword" then
    return { store = "rds", managed = true, service = "secretsmanager" }
  end
  local name, managed = db.masterPasswordSSMParam, false
  if which == nil then
    name, managed = M.password_parameter_name(ns, svc, env), true
  end
  if type(name) ~= "string" then return nil, "expected an SSM parameter name", "masterPasswordSSMParam" end
  if not name:match(SSM_ARN) then
    local ok, err = M.valid_ssm_name(name)
    if not ok then return nil, err, "masterPasswordSSMParam" end
  end
  local arn = M.ssm_arn(name)
  return {
    store = "ssm", managed = managed, name = name,
    value_from = arn, resource = arn,
    kms_context = { key = "kms:EncryptionContext:PARAMETER_ARN", value = arn },
    service = "ssm",
  }
end

local function sub_region(service)
  return { ["Fn::Sub"] = service .. ".${AWS::Region}.amazonaws.com" }
end

function M.read_statements(src, value_resource)
  if type(src) ~= "table" then argerr(1, "read_statements", "password source expected") end
  local resource = value_resource or src.resource
  if resource == nil then argerr(2, "read_statements", "the secret's resource is needed") end
  local read
  if src.service == "ssm" then
    read = { Effect = "Allow", Action = { "ssm:GetParameters" }, Resource = resource }
  else
    read = { Effect = "Allow", Action = { "secretsmanager:GetSecretValue" }, Resource = resource }
  end
  local ctx_key = src.kms_context and src.kms_context.key
    or (src.service == "ssm" and "kms:EncryptionContext:PARAMETER_ARN" or "kms:EncryptionContext:SecretARN")
  local ctx_value = (src.kms_context and src.kms_context.value) or resource
  -- a Secrets Manager ARN with the ?????? wildcard needs StringLike
  local op = (type(ctx_value) == "string" and ctx_value:find("?", 1, true)) and "StringLike" or "StringEquals"
  local cond = { StringEquals = { ["kms:ViaService"] = sub_region(src.service) } }
  cond[op] = cond[op] or {}
  cond[op][ctx_key] = ctx_value
  local decrypt = { Effect = "Allow", Action = { "kms:Decrypt" }, Resource = "*", Condition = cond }
  return { read, decrypt }
end

local function json_escaped(s)
  return (s:gsub('[%c"\\/]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" elseif c == "/" then return "\\/" end
    return string.format("\\u%04x", c:byte())
  end))
end

function M.is_plaintext_free(text, password)
  if type(text) ~= "string" then argerr(1, "is_plaintext_free", "string expected") end
  if type(password) ~= "string" or password == "" then argerr(2, "is_plaintext_free", "password expected") end
  return not text:find(password, 1, true) and not text:find(json_escaped(password), 1, true)
end

return M
