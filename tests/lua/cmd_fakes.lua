-- Fakes shared by the cmd_*_spec.lua files: an AWS module whose clients
-- answer from handler tables (and log every call), a deploy engine that
-- records what it was asked to do, capturing writers and a command context.
-- Load with: local fakes = dofile(HERE .. "/cmd_fakes.lua")
local json = require "lumu.json"

local M = {}

M.HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
M.EXAMPLE = M.HERE .. "/../../scripts/example/lumu.lua"

local Err = { __name = "fake.Error" }
Err.__index = Err
Err.__tostring = function(e) return tostring(e.service or "aws") .. ": " .. tostring(e.code) .. ": " .. tostring(e.message) end

function M.err(code, message)
  return setmetatable({ kind = "service", code = code, message = message or code }, Err)
end

--- fakes.aws(handlers) -> module with client(service, opts); handlers[service][op]
-- = function(params, call) -> result | nil, err.  m.calls = {{service=, op=, params=}...}
function M.aws(handlers)
  local m = { calls = {}, opts = {} }
  function m.client(service, opts)
    m.opts[service] = opts
    local c = { service = service, region = opts and opts.region or "eu-west-1" }
    local function invoke(op, params)
      local call = { service = service, op = op, params = params }
      m.calls[#m.calls + 1] = call
      local h = handlers[service] and handlers[service][op]
      if not h then return nil, M.err("NotImplemented", "fake aws: no handler for " .. service .. " " .. op) end
      return h(params or {}, call)
    end
    c.paginate = function(_, op, params)
      local done = false
      return function()
        if done then return nil end
        done = true
        local res, err = invoke(op, params)
        if not res then error(err, 0) end
        return res
      end
    end
    return setmetatable(c, { __index = function(_, op)
      return function(_, params) return invoke(op, params) end
    end })
  end
  function m.count(service, op)
    local n = 0
    for _, c in ipairs(m.calls) do
      if c.service == service and (op == nil or c.op == op) then n = n + 1 end
    end
    return n
  end
  function m.find(service, op)
    for _, c in ipairs(m.calls) do
      if c.service == service and c.op == op then return c end
    end
  end
  return m
end

--- A CloudFormation DescribeStacks answering from a list of
-- {name=, status=, tags={k=v}, outputs={k=v}}.
function M.describe_stacks(stacks)
  return function(params)
    local out = json.array()
    for _, st in ipairs(stacks) do
      if params.StackName == nil or params.StackName == st.name then
        local tags, outputs = {}, {}
        for k, v in pairs(st.tags or {}) do tags[#tags + 1] = { Key = k, Value = v } end
        for k, v in pairs(st.outputs or {}) do outputs[#outputs + 1] = { OutputKey = k, OutputValue = v } end
        out[#out + 1] = { StackName = st.name, StackStatus = st.status or "CREATE_COMPLETE",
          CreationTime = 1700000000, LastUpdatedTime = st.updated, Tags = tags, Outputs = outputs }
      end
    end
    if params.StackName and #out == 0 then
      return nil, M.err("ValidationError", "Stack with id " .. params.StackName .. " does not exist")
    end
    return { Stacks = out }
  end
end

local function names(list)
  local out = {}
  for i, d in ipairs(list) do out[i] = type(d) == "table" and d.name or d end
  return out
end
M.names = names

--- fakes.deploy([results]) -> module with engine(opts); m.runs = {{action=,
-- names=, descs=}...}, m.opts = the engine options.  results[action] = report
-- or function(descs) -> report.
function M.deploy(results)
  results = results or {}
  local m = { runs = {} }
  function m.engine(opts)
    m.opts = opts
    local eng = {}
    for _, a in ipairs({ "up", "diff", "down" }) do
      eng[a] = function(_, descs)
        m.runs[#m.runs + 1] = { action = a, names = names(descs), descs = descs }
        local r = results[a]
        if type(r) == "function" then return r(descs) end
        return r or { ok = true, exit_code = 0, stacks = {}, summary_lines = {} }
      end
    end
    eng.outputs = function(_, name) return (results.outputs or {})[name] end
    return eng
  end
  return m
end

function M.buffer()
  local b = { parts = {} }
  function b:write(...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring(select(i, ...)) end
    return self
  end
  function b:flush() return true end
  function b:text() return table.concat(self.parts) end
  return b
end

--- A command context: buffers for stdout/stderr, no terminal, no git, an
-- environment table instead of os.getenv; t overrides.
function M.ctx(t)
  t = t or {}
  local env = t.env or {}
  local ctx = {
    stdout = M.buffer(), stderr = M.buffer(),
    isatty = function(fd) return t.tty and t.tty[fd] or false end,
    getenv = function(k) return env[k] end,
    git = false, git_revision = t.git_revision or false,
    sleep = function() end, now = function() return 1700000000 end,
  }
  for k, v in pairs(t) do
    if k ~= "env" and k ~= "tty" then ctx[k] = v end
  end
  return ctx
end

--- Runs a registered-style command module: cmd.run(ctx, args) for raw
-- groups (args as the command line after the command name).
function M.run(modname, ctx, args)
  local cmd = require(modname)
  if cmd.raw then return cmd.run(ctx, args) end
  local cli = require "lumu.cli"
  local opts, pos = cli.parse(cmd.options, args)
  if not opts then return nil, pos, 2 end
  return cmd.run(ctx, pos, opts)
end

--- STS + a stack table: the handlers most commands need.
function M.handlers(stacks, extra)
  local h = {
    sts = { GetCallerIdentity = function() return { Account = "123456789012", Arn = "arn:aws:iam::123456789012:user/t" } end },
    cloudformation = { DescribeStacks = M.describe_stacks(stacks or {}) },
    ssm = {},
  }
  for svc, ops in pairs(extra or {}) do
    h[svc] = h[svc] or {}
    for op, fn in pairs(ops) do h[svc][op] = fn end
  end
  return h
end

return M
