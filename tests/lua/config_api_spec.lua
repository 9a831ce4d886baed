-- lumu.config API: find/load/load_string/format_error, the model helpers,
-- the stack regex, the Lua DSL's features and the `validate` command.
local config = require "lumu.config"
local regex = require "lumu.config.regex"
local fs = require "lumu.fs"

local function no_env() return nil end

local function lua(text, opts)
  opts = opts or {}
  opts.kind = "lua"
  opts.getenv = opts.getenv or no_env
  opts.dirname = opts.dirname or "proj"
  return config.load_string(text, opts)
end

local function lines(problems)
  local out = {}
  for _, p in ipairs(problems or {}) do out[#out + 1] = config.format_error(p) end
  return out
end

local tmp
setup(function()
  tmp = assert(fs.tmpdir("lumu-config-"))
end)
teardown(function()
  if tmp then fs.rmtree(tmp) end
end)

describe("config.find", function()
  it("prefers lumu.lua, then mu.yml, then mu.yaml", function()
    local d = tmp .. "/find"
    assert(fs.mkdir(d))
    assert.is_nil((config.find(d)))
    local _, err = config.find(d)
    assert.are.equal("no lumu.lua or mu.yml in " .. d, err)
    assert(fs.write(d .. "/mu.yaml", "{}\n"))
    assert.are.equal(d .. "/mu.yaml", config.find(d))
    assert(fs.write(d .. "/mu.yml", "{}\n"))
    assert.are.equal(d .. "/mu.yml", config.find(d .. "/"))
    assert(fs.write(d .. "/lumu.lua", "\n"))
    assert.are.equal(d .. "/lumu.lua", config.find(d))
  end)

  it("ignores a directory named like a config", function()
    local d = tmp .. "/find2"
    assert(fs.mkdir(d .. "/lumu.lua"))
    assert(fs.write(d .. "/mu.yml", "{}\n"))
    assert.are.equal(d .. "/mu.yml", config.find(d))
  end)

  it("raises on a bad argument", function()
    assert.has_error(function() config.find(42) end)
  end)
end)

describe("config.load", function()
  it("reports a missing file and a directory as problems", function()
    local m, p = config.load(tmp .. "/nope.yml")
    assert.is_nil(m)
    assert.matches("^" .. tmp:gsub("%p", "%%%0") .. "/nope%.yml: cannot read the configuration: ", lines(p)[1])
    m, p = config.load(tmp)
    assert.is_nil(m)
    assert.matches("cannot read the configuration", lines(p)[1])
  end)

  it("picks the front end by extension unless told", function()
    assert(fs.write(tmp .. "/a.lua", 'namespace "from-lua"\n'))
    assert.are.equal("from-lua", assert(config.load(tmp .. "/a.lua", { getenv = no_env })).namespace)
    assert(fs.write(tmp .. "/conf", 'namespace "x"\n'))
    local m, p = config.load(tmp .. "/conf", { getenv = no_env })
    assert.is_nil(m) -- read as YAML: a plain string, not a mapping
    assert.matches("expected a mapping", lines(p)[1])
    assert.are.equal("x", assert(config.load(tmp .. "/conf", { kind = "lua", getenv = no_env })).namespace)
  end)

  it("raises on misuse", function()
    assert.has_error(function() config.load(nil) end)
    assert.has_error(function() config.load("x", { getenv = "no" }) end)
    assert.has_error(function() config.load("x", { kind = "toml" }) end)
    assert.has_error(function() config.load_string({}) end)
    assert.has_error(function() config.format_error("x") end)
  end)

  it("returns warnings as the second value on success", function()
    local m, w = config.load_string("service:\n  name: Web\n", { getenv = no_env })
    assert.truthy(m)
    assert.are.same({ "mu.yml:2:3: service.name: warning: has upper-case letters, but ECR repository names "
      .. "('<namespace>-Web') must be lower case" }, lines(w))
    assert.are.equal(w, m._warnings)
  end)
end)

describe("config.format_error", function()
  it("one line: where, path, message", function()
    assert.are.equal("mu.yml:12:7: environments[1].cluster.maxSize: expected an integer, got 'five'",
      config.format_error({ where = "mu.yml:12:7", path = "environments[1].cluster.maxSize",
        message = "expected an integer, got 'five'" }))
    assert.are.equal("lumu.lua:3: boom then more", config.format_error({ where = "lumu.lua:3", path = "",
      message = "boom\n  then more" }))
    assert.are.equal("x: p: warning: w", config.format_error({ where = "x", path = "p", message = "w",
      severity = "warning" }))
  end)
end)

describe("model helpers", function()
  it("env_value", function()
    assert.are.equal("a", config.env_value("a", "prod"))
    assert.are.equal("p", config.env_value({ prod = "p" }, "prod"))
    assert.are.equal("", config.env_value({ prod = "p" }, "dev"))
  end)

  it("database_for applies overrides and drops nameless databases", function()
    local svc = { database = { name = "db", engine = "aurora", minSize = 2, _where = "w",
      _keys = { name = "k1", engine = "k2" },
      environmentConfig = { dev = { engine = "mysql", _where = "w2", _keys = { engine = "k3" } }, off = { name = "" } } } }
    local d = config.database_for(svc, "dev")
    assert.are.equal("mysql", d.engine)
    assert.are.equal(2, d.minSize)
    assert.is_nil(d.environmentConfig)
    assert.are.equal("w", d._where)
    assert.are.same({ name = "k1", engine = "k3" }, d._keys)
    assert.are.equal("aurora", config.database_for(svc, "prod").engine)
    assert.is_nil(config.database_for(svc, "off"))
    assert.is_nil(config.database_for({}, "dev"))
  end)

  it("overrides_for merges every matching entry in file order", function()
    local m = assert(config.load_string([[
parameters:
  mu-.*:
    A: "1"
    B: "1"
  mu-service-web-(dev|prod):
    B: "2"
tags:
  mu-service-.*: {Team: web}
templates:
  mu-service-.*: {Resources: {X: {Type: AWS::SNS::Topic}}}
  mu-vpc-.*: {Resources: {Y: {Type: AWS::SNS::Topic}}}
]], { getenv = no_env }))
    local o = config.overrides_for(m, "mu-service-web-dev")
    assert.are.same({ A = "1", B = "2" }, o.parameters)
    assert.are.same({ Team = "web" }, o.tags)
    assert.are.equal(1, #o.templates)
    assert.are.same({ A = "1", B = "1" }, config.overrides_for(m, "mu-service-web-test").parameters)
    assert.is_nil(m.parameters[2].pattern) -- alternation: no Lua pattern, the regex engine decides
    assert.is_true(config.stack_matches(m.parameters[2], "mu-service-web-prod"))
  end)

  it("environment and service lookups", function()
    local m = assert(config.load_string("environments:\n  - name: Dev\nservices:\n  - name: a\n  - name: b\n",
      { getenv = no_env }))
    assert.are.equal("Dev", config.environment(m, "dev").name)
    assert.is_nil(config.environment(m, "prod"))
    assert.are.equal("b", config.service(m, "b").name)
    assert.is_nil(config.service(m, nil))
  end)
end)

describe("stack regex", function()
  local cases = {
    { "mu-vpc-acceptance", "mu-vpc-acceptance", true },
    { "mu-vpc-acceptance", "xmu-vpc-acceptance", false },
    { "mu-.*", "mu-", true },
    { "mu-.+", "mu-", false },
    { "mu-(vpc|target)-prod", "mu-target-prod", true },
    { "mu-(?:vpc|target)-prod", "mu-cluster-prod", false },
    { "mu-[a-c]+-\\d{2,3}", "mu-abc-123", true },
    { "mu-[a-c]+-\\d{2,3}", "mu-abc-1234", false },
    { "mu-[^-]+-x", "mu-a-b-x", false },
    { "^mu-a$", "mu-a", true },
    { "a?b*c", "c", true },
    { "\\.", ".", true },
    { "\\.", "a", false },
    { "(a|ab)(c|bcd)(d*)", "abcd", true },
    { "x{2}", "xx", true },
    { "x{2}", "xxx", false },
    { "a{,2}", "a{,2}", true },
  }
  for _, c in ipairs(cases) do
    it(string.format("%s ~ %s -> %s", c[1], c[2], tostring(c[3])), function()
      local re = assert(regex.compile(c[1]))
      assert.are.equal(c[3], re:match(c[2]))
      if re.lua_pattern then
        assert.are.equal(c[3], c[2]:match(re.lua_pattern) ~= nil)
      end
    end)
  end

  it("translates simple keys to Lua patterns and refuses the rest", function()
    assert.are.equal("^mu%-vpc%-acceptance$", regex.to_lua_pattern("mu-vpc-acceptance"))
    assert.are.equal("^mu%-.*%-[%d]+$", regex.to_lua_pattern("mu-.*-[\\d]+"))
    assert.is_nil(regex.to_lua_pattern("a|b"))
    assert.is_nil(regex.to_lua_pattern("(ab)+"))
  end)

  it("reports unsupported syntax without raising", function()
    for _, bad in ipairs({ "(a", "a)", "[a", "*a", "a**", "(?i)a", "\\p{L}", "[[:alpha:]]", "a{3,1}", "\\",
      string.rep("(", 60) .. string.rep(")", 60), string.rep("a", 2000) }) do
      local re, err = regex.compile(bad)
      assert.is_nil(re, bad)
      assert.is_string(err)
    end
  end)
end)

describe("the Lua DSL", function()
  it("keeps the script's globals out of _G and reads the environment through opts.getenv", function()
    local m = assert(lua([[
lumu_config_leak = true
namespace(os.getenv("NS"))
environment { name = os.getenv("HOME") and "has-home" or "no-home" }
]], { getenv = function(n) return n == "NS" and "from-env" or nil end }))
    assert.is_nil(rawget(_G, "lumu_config_leak"))
    assert.are.equal("from-env", m.namespace)
    assert.are.equal("no-home", m.environments[1].name)
  end)

  it("returns each call's argument, so calls compose", function()
    local m = assert(lua([[
local base = environment { name = "a", cluster = { maxSize = 4 } }
environment { name = "b", cluster = base.cluster }
for i = 1, 3 do service { name = "svc" .. i, priority = i } end
]]))
    assert.are.equal(4, m.environments[2].cluster.maxSize)
    assert.are.equal(3, #m.services)
    assert.are.equal("svc3", m.services[3].name)
  end)

  it("attaches database{} and pipeline{} by service name", function()
    local m = assert(lua([[
environment { name = "acceptance" }
environment { name = "production" }
service { name = "web" }
service { name = "api" }
database { service = "api", name = "apidb" }
pipeline { service = "web", source = { repo = "acme/web" } }
]]))
    assert.is_nil(m.services[1].database)
    assert.are.equal("apidb", m.services[2].database.name)
    assert.are.equal("acme/web", m.services[1].pipeline.source.repo)
    assert.is_nil(m.services[2].pipeline)
  end)

  it("merges catalog{} calls, accepts extension \"path\", roles{} and disableIAM()", function()
    local m = assert(lua([[
catalog { iamUsers = { "a" } }
catalog { iamUsers = { "b" }, pipelines = { { name = "p1", versions = { v1 = {} } } } }
catalog { pipelines = { { name = "p2" } } }
extension "local-ext"
roles { cloudFormation = "arn:aws:iam::123456789012:role/cfn" }
disableIAM()
]]))
    assert.are.same({ "a", "b" }, m.catalog.iamUsers)
    assert.are.equal(2, #m.catalog.pipelines)
    assert.are.equal("acceptance", m.catalog.pipelines[1].versions.v1.acceptance.environment)
    assert.are.equal("local-ext", m.extensions[1].url)
    assert.is_true(m.disableIAM)
    assert.are.equal("arn:aws:iam::123456789012:role/cfn", m.roles.cloudFormation)
  end)

  it("loads team modules once, from the config directory", function()
    local d = tmp .. "/proj"
    assert(fs.mkdir(d .. "/team"))
    assert(fs.mkdir(d .. "/lua_modules/share/lua/5.4/rock"))
    assert(fs.write(d .. "/team/count.lua", "loads = (loads or 0) + 1\nreturn { n = loads }\n"))
    assert(fs.write(d .. "/lua_modules/share/lua/5.4/rock/init.lua", "return { env = function(n) return environment { name = n } end }\n"))
    assert(fs.write(d .. "/lumu.lua", [[
local a = require "team.count"
local b = require "team.count"
require("rock").env("from-rock")
local json = require "lumu.json"
environment { name = "n" .. a.n .. b.n .. (json.null and "j" or "") }
]]))
    local m, p = config.load(d .. "/lumu.lua", { getenv = no_env })
    assert(m, table.concat(lines(p), "\n"))
    assert.are.equal("from-rock", m.environments[1].name)
    assert.are.equal("n11j", m.environments[2].name)
    -- `return environment{...}` is a tail call: Lua reports the caller's line
    assert.are.equal(d .. "/lumu.lua:3", m.environments[1]._where)
  end)

  it("reports misuse at the call site and keeps going", function()
    local m, p = lua([[
service { name = "web" }
database { name = "one" }
database { name = "two" }
pipeline "x"
environment { name = "acceptance", nmae = "typo" }
]])
    assert.is_nil(m)
    assert.are.same({
      "lumu.lua:3: database: service 'web' already has a database (given at lumu.lua:2)",
      "lumu.lua:4: pipeline{...} expects a table, got 'x'",
      "lumu.lua:5: environments[1]: unknown key 'nmae' (did you mean 'name'?)",
    }, lines(p))
  end)
end)

describe("lumu validate", function()
  local validate = require "lumu.cli.validate"
  local function sink()
    local buf = {}
    return { write = function(self, ...) for _, s in ipairs({ ... }) do buf[#buf + 1] = s end return self end,
      text = function() return table.concat(buf) end }
  end
  local function run(opts, args)
    local out, err = sink(), sink()
    local r1, r2, r3 = validate.run({ stdout = out, stderr = err }, args or {}, opts)
    return r1, r2, r3, out:text(), err:text()
  end

  it("prints a summary for a valid file", function()
    local r, _, _, out, err = run({ config = "tests/fixtures/config/equiv/mu.yml", config_only = true })
    assert.are.equal(0, r)
    assert.are.equal("tests/fixtures/config/equiv/mu.yml: ok (namespace acme, 3 environments, 1 service, 1 pipeline)\n", out)
    assert.are.equal("", err)
  end)

  it("prints every problem, one per line, and fails with exit code 2", function()
    local r, msg, code, out, err = run({ config = "tests/fixtures/config/bad/pipeline-env-missing.yml" })
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.are.equal("validate: tests/fixtures/config/bad/pipeline-env-missing.yml: 1 error", msg)
    assert.are.equal("", out)
    assert.are.equal("tests/fixtures/config/bad/pipeline-env-missing.yml:6:3: service.pipeline.acceptance.environment: "
      .. "environment 'acceptance' is not defined (environments: dev, production)\n", err)
  end)

  it("--strict fails on warnings, --print shows the model, -n sets the namespace", function()
    assert(fs.write(tmp .. "/warn.yml", "service:\n  name: Web\n"))
    local r, msg, code = run({ config = tmp .. "/warn.yml", strict = true, config_only = true })
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("1 warning %(%-%-strict%)", msg)
    local r2, _, _, out = run({ config = tmp .. "/warn.yml", print = true, namespace = "other" })
    assert.are.equal(0, r2)
    assert.matches('namespace = "other"', out)
    assert.is_nil(out:find("_where", 1, true))
  end)

  it("checks the generated templates too, writing nothing (exit 1 on a template problem)", function()
    assert(fs.write(tmp .. "/tpl.yml", table.concat({
      "environments:", "  - name: acceptance", "templates:", "  mu-vpc-acceptance:", "    Resources:",
      "      Extra:", "        Type: AWS::S3::Bucket", "        Properties:",
      "          BucketName: !Ref DoesNotExist", "" }, "\n")))
    local r, msg, code, out, err = run({ config = tmp .. "/tpl.yml" })
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("1 template problem", msg, 1, true)
    assert.matches("mu-vpc-acceptance: Resources.Extra.Properties.BucketName: Ref: unknown parameter or resource 'DoesNotExist'",
      err, 1, true)
    assert.are.equal("", out)
    -- the configuration alone is fine
    assert.are.equal(0, (run({ config = tmp .. "/tpl.yml", config_only = true })))
  end)

  it("reports the stacks it checked for a valid project", function()
    local r, _, _, out = run({ config = "scripts/example/lumu.lua" })
    assert.are.equal(0, r)
    assert.matches("scripts/example/lumu.lua: ok %(namespace mu, 2 environments, 1 service, 1 pipeline, %d+ stacks%)", out)
  end)

  it("complains without a config file or with stray arguments", function()
    local r, msg, code = run({}, { "extra" })
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("unexpected argument 'extra'", msg)
    r, msg, code = run({ config = tmp .. "/none.yml" })
    assert.is_nil(r)
    assert.are.equal(2, code)
  end)
end)
