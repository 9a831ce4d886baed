-- Specs of lumu.repl (the loop, completion, history path) and its C core
-- lumu._repl (history files, completer registration, readline without a
-- terminal).
local repl = require "lumu.repl"
local edit = require "lumu._repl"

-- Runs the loop over `lines`; returns stdout text, stderr text, the prompts
-- asked, the history entries, the exit code.
local function session(lines, opts)
  opts = opts or {}
  local out, err, prompts, hist = {}, {}, {}, {}
  local i = 0
  local code = repl.loop {
    read = function(p)
      prompts[#prompts + 1] = p
      i = i + 1
      return lines[i]
    end,
    write = function(s) out[#out + 1] = s end,
    error = function(s) err[#err + 1] = s end,
    history = function(s) hist[#hist + 1] = s end,
    debug = opts.debug,
  }
  return table.concat(out), table.concat(err), prompts, hist, code
end

local function tmpname()
  local name = os.tmpname()
  os.remove(name)
  return name
end

-- Runs the lumu binary under test with a shell command line; returns output.
local function lumu(args, input, env)
  local bin = assert(os.getenv("LUMU_BIN"), "LUMU_BIN is set by ctest")
  local infile = tmpname()
  local f = assert(io.open(infile, "w"))
  f:write(input or "")
  f:close()
  local p = assert(io.popen(string.format("%s %s %s <%s 2>&1", env or "", bin, args, infile)))
  local text = p:read("a")
  local ok, _, code = p:close()
  os.remove(infile)
  return text, ok and 0 or code
end

describe("lumu.repl loop", function()
  -- chunks run in the real global table (specs have their own environment)
  after_each(function()
    load("x_repl_spec, _PROMPT, _PROMPT2 = nil, nil, nil")()
  end)

  it("prints the values of expressions", function()
    local out, err, _, _, code = session { "1 + 1", "'a', 2, nil", "nil" }
    assert.are.equal("2\na\t2\tnil\nnil\n\n", out)
    assert.are.equal("", err)
    assert.are.equal(0, code)
  end)

  it("pretty-prints tables and uses tostring for the rest", function()
    local out = session { "{ 1, 2, k = { 'v' } }", "setmetatable({}, {__tostring = function() return 'T!' end})",
      "true" }
    assert.are.equal('{ 1, 2, k = { "v" } }\nT!\ntrue\n\n', out)
  end)

  it("runs statements without printing", function()
    local out = session { "x_repl_spec = 40", "x_repl_spec = x_repl_spec + 2", "x_repl_spec" }
    assert.are.equal("42\n\n", out)
    assert.are.equal(42, load("return x_repl_spec")())
  end)

  it("treats a leading '=' as return", function()
    assert.are.equal("3\n\n", (session { "=1 + 2" }))
  end)

  it("prints nothing for no values", function()
    assert.are.equal("\n", (session { "", "return", "(function() end)()" }))
  end)

  it("continues incomplete chunks with the second prompt", function()
    local out, err, prompts, hist = session { "function x_repl_spec(n)", "  return n * 2", "end", "x_repl_spec(21)" }
    assert.are.equal("42\n\n", out)
    assert.are.equal("", err)
    assert.are.same({ "> ", ">> ", ">> ", "> ", "> " }, prompts)
    assert.are.same({ "function x_repl_spec(n)\n  return n * 2\nend", "x_repl_spec(21)" }, hist)
  end)

  it("uses _PROMPT and _PROMPT2 through tostring", function()
    local _, _, prompts = session { "_PROMPT = setmetatable({}, { __tostring = function() return 'P1 ' end })",
      "_PROMPT2 = 22", "do", "end" }
    assert.are.same({ "> ", "P1 ", "P1 ", "22", "P1 " }, prompts)
  end)

  it("falls back to the default prompt when tostring fails", function()
    local _, _, prompts = session { "_PROMPT = setmetatable({}, { __tostring = function() error('no') end })" }
    assert.are.same({ "> ", "> " }, prompts)
  end)

  it("reports runtime errors and goes on", function()
    local out, err, _, _, code = session { "error('boom')", "1" }
    assert.are.equal("1\n\n", out)
    assert.are.equal("lumu: stdin:1: boom\n", err)
    assert.are.equal(0, code)
  end)

  it("adds a traceback when debugging", function()
    local _, err = session({ "error('boom')" }, { debug = true })
    assert.matches("^lumu: stdin:1: boom\nstack traceback:", err)
  end)

  it("reports syntax errors, and incomplete chunks at end of input", function()
    local _, err = session { "x = = 1", "for i = 1, 2 do" }
    assert.are.equal("lumu: stdin:1: unexpected symbol near '='\nlumu: stdin:1: 'end' expected near <eof>\n", err)
  end)

  it("reports non-string errors", function()
    local _, err = session { "error({})", "error(setmetatable({}, {__tostring = function() return 'E!' end}))" }
    assert.are.equal("lumu: (error object is a table value)\nlumu: E!\n", err)
  end)

  it("reports a failing __tostring of a result", function()
    local out, err = session { "setmetatable({}, {__tostring = function() error('bad text') end})", "7" }
    assert.are.equal("7\n\n", out)
    assert.matches("^lumu: error printing the result: ", err)
    assert.matches("bad text", err, 1, true)
  end)

  it("abandons the line on Ctrl-C (false from read)", function()
    local out, err = session { "do", false, "5" }
    assert.are.equal("^C\n5\n\n", out)
    assert.are.equal("", err)
  end)

  it("reports an interrupted chunk on a new line", function()
    local out, err = session { "error('interrupted!')", "1" }
    assert.are.equal("1\n\n", out)
    assert.are.equal("\nlumu: interrupted\n", err)
  end)

  it("goes on after a Ctrl-C that lands outside the chunk", function()
    local n, out = 0, {}
    local code = repl.loop {
      read = function()
        n = n + 1
        if n == 1 then error("interrupted!") end
        if n == 2 then return "2" end
      end,
      write = function(s) out[#out + 1] = s end,
      error = function() end,
    }
    assert.are.equal(0, code)
    assert.are.equal("^C\n2\n\n", table.concat(out))
  end)

  it("records lines as typed", function()
    local _, _, _, hist = session { "=1", "  2  " }
    assert.are.same({ "=1", "  2  " }, hist)
  end)

  it("does not record empty lines in the history", function()
    local _, _, _, hist = session { "", "1", "" }
    assert.are.same({ "1" }, hist)
  end)

  it("survives hostile input: deep nesting, huge lines, bad bytes", function()
    local out, err = session { string.rep("(", 10000), "#'" .. string.rep("x", 1000000) .. "'", "'\0\255\1'" }
    assert.matches("^lumu: ", err)
    assert.are.equal("1000000\n\0\255\1\n\n", out) -- strings print raw, like lua.c
  end)

  it("ends with an internal error code when reading raises", function()
    local err = {}
    local code = repl.loop {
      read = function() error("reader broke") end,
      write = function() end,
      error = function(s) err[#err + 1] = s end,
    }
    assert.are.equal(3, code)
    assert.matches("internal error in the REPL: .*reader broke", table.concat(err))
  end)
end)

describe("lumu.repl.complete", function()
  local env = {
    string = string,
    str = "text",
    aws = setmetatable({ cloudformation = {} }, {
      __complete = function() return { "cloudwatch", "s3", 42 } end,
      __index = function() error("must not be called") end,
    }),
    obj = setmetatable({ own = 1 }, { __index = { inherited = function() end, field = 2 } }),
    [1] = "not a name",
    ["not a name"] = true,
  }

  it("completes globals and keywords", function()
    assert.are.same({ "str", "string" }, repl.complete("str", "str", env))
    assert.are.same({ "function" }, repl.complete("fun", "fun", env))
  end)

  it("completes fields of library tables", function()
    assert.are.same({ "string.find", "string.format" }, repl.complete("x = string.f", "string.f", env))
  end)

  it("completes methods of strings after ':'", function()
    assert.are.same({ "str:upper" }, repl.complete("str:up", "str:up", env))
  end)

  it("follows __index tables and only lists functions after ':'", function()
    assert.are.same({ "obj.field", "obj.inherited", "obj.own" }, repl.complete("obj.", "obj.", env))
    assert.are.same({ "obj:inherited" }, repl.complete("obj:", "obj:", env))
  end)

  it("uses __complete for lazy tables and never calls __index functions", function()
    assert.are.same({ "aws.cloudformation", "aws.cloudwatch" }, repl.complete("aws.cl", "aws.cl", env))
    assert.are.same({}, repl.complete("aws.zz.", "aws.zz.", env))
  end)

  it("finds the word itself when not given one", function()
    assert.are.same({ "string.rep", "string.reverse" }, repl.complete("print(string.re"))
  end)

  it("returns nothing for unknown or non-table paths and odd words", function()
    assert.are.same({}, repl.complete("nosuch.x", "nosuch.x", env))
    assert.are.same({}, repl.complete("obj.own.x", "obj.own.x", env))
    assert.are.same({}, repl.complete("", "", env))
    assert.are.same({}, repl.complete("a..b", "a..b", env))
    assert.are.same({}, repl.complete("1x", "1x", env))
    assert.are.same({}, repl.complete("\255\0", "\255\0", env))
  end)

  it("copes with cycles, long chains and huge tables", function()
    local t = {}
    t.t = t
    setmetatable(t, { __index = t })
    local e = { t = t, big = {} }
    for i = 1, 20000 do e.big["k" .. i] = i end
    assert.are.same({ "t.t.t.t.t" }, repl.complete("t.t.t.t.t", "t.t.t.t.t", e))
    assert.are.same({}, repl.complete("", string.rep("t.", 100) .. "t", e))
    local list = repl.complete("big.k", "big.k", e)
    assert.are.equal(5000, #list)
    assert.are.equal("big.k1", list[1])
  end)
end)

describe("lumu.repl.history_path", function()
  local show = [[-e 'print(require("lumu.repl").history_path())']]
  it("is LUMU_HISTORY, else ~/.lumu_history, else none", function()
    assert.are.equal("/x/h\n", lumu(show, nil, "env LUMU_HISTORY=/x/h"))
    assert.are.equal("nil\n", lumu(show, nil, "env LUMU_HISTORY="))
    assert.are.equal("/home/u/.lumu_history\n", lumu(show, nil, "env -u LUMU_HISTORY HOME=/home/u"))
    assert.are.equal("nil\n", lumu(show, nil, "env -u LUMU_HISTORY HOME="))
    assert.are.equal("nil\n", lumu(show, nil, "env -u LUMU_HISTORY -u HOME"))
  end)
end)

describe("lumu._repl", function()
  local files = {}
  local function tmp()
    local n = tmpname()
    files[#files + 1] = n
    return n
  end
  teardown(function()
    for _, f in ipairs(files) do os.remove(f) end
  end)

  it("saves and loads the history, new files private", function()
    local path = tmp()
    edit.add_history("x = 1")
    edit.add_history("multi\nline")
    assert.is_true(edit.history_save(path))
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    assert.matches("x\\040=\\0401", text, 1, true)
    local p = io.popen("stat -c %a " .. path)
    assert.are.equal("600\n", p:read("a"))
    p:close()
    assert.is_true(edit.history_load(path))
  end)

  it("returns nil, message for files it cannot use", function()
    local ok, err = edit.history_load("/nonexistent/dir/history")
    assert.is_nil(ok)
    assert.matches("/nonexistent/dir/history", err, 1, true)
    ok, err = edit.history_save("/nonexistent/dir/history")
    assert.is_nil(ok)
    assert.matches("/nonexistent/dir/history", err, 1, true)
  end)

  it("raises on misuse", function()
    assert.has_error(function() edit.add_history() end)
    assert.has_error(function() edit.history_load({}) end)
    assert.has_error(function() edit.set_completer(42) end)
    edit.set_completer(function() return {} end)
    edit.set_completer(nil)
  end)

  it("reads lines (UTF-8 kept) when stdin is not a terminal", function()
    local out = lumu([[-e 'local e = require "lumu._repl"
      print(e.readline("p> "), e.readline("p> "), e.readline("p> "))']], "first line\nh\195\169llo\n",
      "env LC_ALL=C.UTF-8")
    assert.are.equal("first line\th\195\169llo\tnil\n", out)
  end)
end)
