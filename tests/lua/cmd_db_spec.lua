-- `lumu db up|list|terminate|get-password|set-password` over fakes: the
-- managed master password (created once, never printed except by
-- get-password), terminal and stdin input for set-password.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local fakes = dofile(HERE .. "/cmd_fakes.lua")
local json = require "lumu.json"

local EX = fakes.EXAMPLE
local PNAME = "mu-database-sample-service-acceptance-DatabaseMasterPassword"
local KEY = "arn:aws:kms:eu-west-1:123456789012:key/k-1"

local function world(t)
  t = t or {}
  local store = t.store or {}
  local stacks = t.stacks or {
    { name = "mu-iam-service-sample-service-acceptance", tags = { ["mu:type"] = "iam" },
      outputs = { DatabaseKeyArn = KEY } },
    { name = "mu-database-sample-service-acceptance", tags = { ["mu:type"] = "database",
      ["mu:environment"] = "acceptance", ["mu:service"] = "sample-service" },
      outputs = { DatabaseEndpointAddress = "db.example.internal" } },
  }
  local aws = fakes.aws(fakes.handlers(stacks, { ssm = {
    GetParameter = function(p)
      local v = store[p.Name]
      if not v then return nil, fakes.err("ParameterNotFound", p.Name) end
      return { Parameter = { Name = p.Name, Version = v.version, Value = p.WithDecryption and v.value or "xxxx" } }
    end,
    PutParameter = function(p)
      local v = store[p.Name]
      if v and not p.Overwrite then return nil, fakes.err("ParameterAlreadyExists", p.Name) end
      store[p.Name] = { value = p.Value, version = (v and v.version or 0) + 1, key = p.KeyId, type = p.Type }
      return { Version = store[p.Name].version }
    end,
    DeleteParameter = function(p)
      if not store[p.Name] then return nil, fakes.err("ParameterNotFound", p.Name) end
      store[p.Name] = nil
      return {}
    end,
  } }))
  local dep = fakes.deploy()
  local ctx = fakes.ctx { aws = aws, deploy = dep, read_secret = t.read_secret, stdin = t.stdin,
    tty = t.tty }
  return ctx, aws, dep, store
end

local function db(ctx, ...)
  return fakes.run("lumu.cli.db", ctx, { ... })
end

describe("db up", function()
  it("creates the password once and passes its version to the database stack", function()
    local ctx, aws, dep, store = world()
    assert.are.equal(0, db(ctx, "up", "acceptance", "-c", EX, "--yes"))
    local p = store[PNAME]
    assert.are.equal("SecureString", p.type)
    assert.are.equal(KEY, p.key)
    assert.are.equal(32, #p.value)
    -- the key's stack existed: one run with everything
    assert.are.equal(1, #dep.runs)
    local last = dep.runs[1].descs[#dep.runs[1].descs]
    assert.are.equal("mu-database-sample-service-acceptance", last.name)
    assert.are.equal("1", last.parameters.DatabaseMasterSecretVersion)
    assert.is_nil(ctx.stdout:text():find(p.value, 1, true))
    assert.is_nil(ctx.stderr:text():find(p.value, 1, true))
    assert.matches("created the master password in SSM parameter " .. PNAME:gsub("%-", "%%-"), ctx.stderr:text())
    -- again: kept
    local ctx2 = fakes.ctx { aws = aws, deploy = dep }
    assert.are.equal(0, db(ctx2, "upsert", "acceptance", "sample-service", "-c", EX))
    assert.are.equal(1, aws.count("ssm", "PutParameter"))
    assert.are.equal(1, store[PNAME].version)
    assert.are.equal("1", dep.runs[2].descs[#dep.runs[2].descs].parameters.DatabaseMasterSecretVersion)
  end)

  it("does nothing for a service without a database", function()
    local ctx, aws, dep = world()
    local cfg = require("lumu.fs").tmpdir("lumu-cmddb-")
    finally(function() require("lumu.fs").rmtree(cfg) end)
    assert(require("lumu.fs").write(cfg .. "/mu.yml", "environments:\n  - name: dev\nservice:\n  name: web\n"))
    assert.are.equal(0, db(ctx, "up", "dev", "-c", cfg .. "/mu.yml"))
    assert.are.equal(0, #dep.runs)
    assert.are.equal(0, #aws.calls)
    assert.matches("no database in 'dev'", ctx.stderr:text())
  end)

  it("checks its arguments", function()
    local r, msg, code = db(world(), "up", "-c", EX)
    assert.is_nil(r)
    assert.are.equal(2, code)
    r, msg, code = db(world(), "up", "acceptance", "nope", "-c", EX)
    assert.are.equal(2, code)
    assert.matches("unknown service 'nope'", msg)
    r, msg, code = db(world(), "up", "staging", "-c", EX)
    assert.are.equal(2, code)
  end)
end)

describe("db list", function()
  it("lists the database stacks", function()
    local ctx = world()
    assert.are.equal(0, db(ctx, "ls", "-c", EX))
    assert.matches("acceptance%s+sample%-service%s+mu%-database%-sample%-service%-acceptance%s+CREATE_COMPLETE%s+db%.example",
      ctx.stdout:text())
    ctx = world()
    assert.are.equal(0, db(ctx, "list", "--output", "json", "-c", EX))
    assert.are.equal("db.example.internal", json.decode(ctx.stdout:text())[1].endpoint)
  end)
end)

describe("db terminate", function()
  it("deletes the stack, then the password", function()
    local ctx, _, dep, store = world { store = { [PNAME] = { value = "x", version = 3 } } }
    assert.are.equal(0, db(ctx, "term", "acceptance", "-c", EX, "--yes"))
    assert.are.same({ "mu-database-sample-service-acceptance" }, dep.runs[1].names)
    assert.are.equal("down", dep.runs[1].action)
    assert.is_nil(store[PNAME])
    -- again: the parameter is gone already, which is fine
    ctx = fakes.ctx { aws = ctx.aws, deploy = dep }
    assert.are.equal(0, db(ctx, "terminate", "acceptance", "-c", EX, "--yes"))
  end)

  it("works by name without a configuration", function()
    local ctx, _, dep, store = world { store = { ["mu-database-api-qa-DatabaseMasterPassword"] = { value = "x", version = 1 } } }
    assert.are.equal(0, db(ctx, "terminate", "qa", "api"))
    assert.are.same({ "mu-database-api-qa" }, dep.runs[1].names)
    assert.is_nil(store["mu-database-api-qa-DatabaseMasterPassword"])
  end)
end)

describe("db get-password", function()
  it("prints the decrypted password on stdout, only", function()
    local ctx = world { store = { [PNAME] = { value = "s3cret-value", version = 2 } } }
    assert.are.equal(0, db(ctx, "gp", "acceptance", "-c", EX))
    assert.are.equal("s3cret-value\n", ctx.stdout:text())
    assert.is_true(ctx.aws.find("ssm", "GetParameter").params.WithDecryption)
  end)

  it("explains a missing password", function()
    local r, msg, code = db(world(), "get-password", "acceptance", "-c", EX)
    assert.is_nil(r)
    assert.are.equal(1, code)
    assert.matches("run 'lumu db up acceptance'", msg)
  end)
end)

describe("db set-password", function()
  it("asks twice with echo off on a terminal and stores a new version", function()
    local asked = {}
    local ctx, _, _, store = world { store = { [PNAME] = { value = "old", version = 1 } },
      read_secret = function(prompt) asked[#asked + 1] = prompt; return "N3w-Passw0rd" end }
    assert.are.equal(0, db(ctx, "sp", "acceptance", "-c", EX))
    assert.are.equal(2, #asked)
    assert.are.equal("N3w-Passw0rd", store[PNAME].value)
    assert.are.equal(2, store[PNAME].version)
    assert.are.equal(KEY, store[PNAME].key)
    assert.matches("run 'lumu db up acceptance'", ctx.stderr:text())
    assert.is_nil(ctx.stderr:text():find("N3w-Passw0rd", 1, true))
  end)

  it("refuses different answers and weak or odd passwords", function()
    local n = 0
    local ctx = world { read_secret = function() n = n + 1; return n == 1 and "aaaaaaaa1" or "bbbbbbbb2" end }
    local r, msg = db(ctx, "set-password", "acceptance", "-c", EX)
    assert.is_nil(r)
    assert.matches("differ", msg)
    for _, bad in ipairs({ "short", "has space in it", "with/slash1", 'quote"d12', "at@sign123", string.rep("x", 129),
      "bad\0byte12", "\255\254\253\252\251\250\249\248" }) do
      local c = world { stdin = { read = function() return bad end } }
      local rr, m, code = db(c, "set-password", "acceptance", "--password-stdin", "-c", EX)
      assert.is_nil(rr, bad)
      assert.are.equal(2, code)
      assert.matches("password must", m)
      assert.are.equal(0, c.aws.count("ssm", "PutParameter"))
    end
  end)

  it("reads one line from stdin with --password-stdin", function()
    local ctx, _, _, store = world { stdin = { read = function() return "From-Stdin-123\n" end } }
    assert.are.equal(0, db(ctx, "set-password", "acceptance", "--password-stdin", "-c", EX))
    assert.are.equal("From-Stdin-123", store[PNAME].value)
  end)

  it("never prompts without a terminal", function()
    local ctx = world { stdin = { read = function() error("must not read") end } }
    local r, msg, code = db(ctx, "set-password", "acceptance", "-c", EX)
    assert.is_nil(r)
    assert.are.equal(2, code)
    assert.matches("stdin is not a terminal: pipe the password with %-%-password%-stdin", msg)
  end)
end)
