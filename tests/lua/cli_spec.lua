-- Specs of the command-line pieces that can be tested in-process: the
-- dispatcher's helpers (parse, suggest, names, message), lua.c's arg table
-- (lumu.cli.run) and the completion script generators.
local cli = require "lumu.cli"
local run = require "lumu.cli.run"
local completion = require "lumu.cli.completion"

describe("lumu.cli.parse", function()
  local spec = {
    { "-o", "--output", arg = "FORMAT" },
    { "-v", "--verbose" },
    { "--tag", arg = "T", multi = true },
  }

  it("parses short, long, --name=value and positionals", function()
    local opts, pos = cli.parse(spec, { "a", "-o", "json", "--verbose", "b", "--tag=x", "--tag", "y" })
    assert.are.same({ output = "json", verbose = true, tag = { "x", "y" } }, opts)
    assert.are.same({ "a", "b" }, pos)
  end)

  it("stops at -- and keeps '-' as a positional", function()
    local opts, pos = cli.parse(spec, { "-", "--", "-o", "--verbose" })
    assert.are.same({}, opts)
    assert.are.same({ "-", "-o", "--verbose" }, pos)
  end)

  it("rejects unknown options with a suggestion", function()
    local opts, err = cli.parse(spec, { "--outptu", "x" })
    assert.is_nil(opts)
    assert.are.equal("unknown option '--outptu' (did you mean '--output'?)", err)
    opts, err = cli.parse(spec, { "--zzzzzzzzzz" })
    assert.is_nil(opts)
    assert.are.equal("unknown option '--zzzzzzzzzz'", err)
  end)

  it("rejects a missing value and a value given to a flag", function()
    assert.are.same({ nil, "option '-o' needs a value (FORMAT)" }, { cli.parse(spec, { "-o" }) })
    assert.are.same({ nil, "option '--verbose' takes no value" }, { cli.parse(spec, { "--verbose=1" }) })
  end)
end)

describe("lumu.cli helpers", function()
  it("suggests close names only", function()
    assert.are.equal("version", cli.suggest("verison", { "help", "version" }))
    assert.are.equal("help", cli.suggest("hlep", { "help", "version" }))
    assert.is_nil(cli.suggest("deploy", { "help", "version" }))
    assert.is_nil(cli.suggest("x", {}))
  end)

  it("lists the commands sorted", function()
    local names = cli.names()
    local sorted = { table.unpack(names) }
    table.sort(sorted)
    assert.are.same(sorted, names)
    for _, n in ipairs { "completion", "help", "repl", "run", "test", "version" } do
      assert.contains(names, n)
    end
  end)

  it("loads every built-in command table", function()
    for _, n in ipairs(cli.names()) do
      local cmd = cli.command(n)
      assert.is_table(cmd)
      assert.is_string(cmd.summary)
      assert.is_function(cmd.run)
    end
  end)

  it("strips tracebacks unless debugging", function()
    local err = "x.lua:1: boom\nstack traceback:\n\t[C]: in ?"
    assert.are.equal("x.lua:1: boom", cli.message(err, false))
    assert.are.equal(err, cli.message(err, true))
    assert.are.equal("(nil)", cli.message("(nil)"))
  end)
end)

describe("lumu.cli.run.make_arg", function()
  local argv = { [0] = "lumu", "-e", "x=1", "script.lua", "a", "b" }

  it("indexes the script as arg[0], like lua.c", function()
    assert.are.same({ [-3] = "lumu", [-2] = "-e", [-1] = "x=1", [0] = "script.lua", "a", "b" },
      run.make_arg(argv, 3))
  end)

  it("makes every argument positive without a script", function()
    assert.are.same({ [0] = "lumu", "-e", "x=1", "script.lua", "a", "b" }, run.make_arg(argv, nil))
    assert.are.same({ [0] = "lumu" }, run.make_arg({ [0] = "lumu" }))
  end)
end)

describe("lumu completion", function()
  local registered = {}
  local function register(name, cmd)
    package.loaded["spec.fake." .. name] = cmd
    cli.register(name, "spec.fake." .. name)
    registered[#registered + 1] = name
  end
  after_each(function()
    for _, name in ipairs(registered) do
      cli.commands[name] = nil
      package.loaded["spec.fake." .. name] = nil
      for a, n in pairs(cli.aliases) do
        if n == name then cli.aliases[a] = nil end
      end
    end
    registered = {}
  end)

  it("includes commands registered later, with options and aliases", function()
    register("deploy", {
      summary = "deploy a stack",
      options = {
        { "-s", "--stage", arg = "NAME", choices = { "dev", "prod" }, desc = "the stage" },
        { "--template", arg = "FILE", desc = "a template" },
        { "-y", "--yes", desc = "no questions" },
      },
      run = function() end,
    })
    cli.aliases.dep = "deploy"
    for _, shell in ipairs { "bash", "zsh", "fish" } do
      local script = completion[shell]()
      assert.matches("deploy", script, 1, true)
      assert.matches("stage", script, 1, true)
      assert.matches("template", script, 1, true)
      assert.matches("prod", script, 1, true)
      assert.matches("dep", script, 1, true)
    end
    local bash = completion.bash()
    assert.matches("case $prev in -s|--stage) _lumu_words 'dev prod'", bash, 1, true)
    assert.matches("case $prev in --template) _lumu_files", bash, 1, true)
    -- the top-level word list is every command plus every alias, sorted
    local words = cli.names()
    for alias in pairs(cli.aliases) do words[#words + 1] = alias end
    table.sort(words)
    assert.matches("_lumu_words '" .. table.concat(words, " ") .. "'", bash, 1, true)
  end)

  it("leaves out names that are not plain words", function()
    register("evil$(touch x)", { summary = "x", run = function() end })
    register("fine", {
      summary = "it's [quoted]: \"ok\" \\ $HOME `x`\nnext line",
      options = { { "--bad;rm", "-ok", "--good", desc = "it's" }, { "--x y" } },
      complete = { "word", "bad word", "$(x)" },
      run = function() end,
    })
    local cmds = completion.model()
    local fine
    for _, c in ipairs(cmds) do
      assert.are_not.equal("evil$(touch x)", c.name)
      if c.name == "fine" then fine = c end
    end
    assert.is_table(fine)
    assert.are.same({ "-ok", "--good" }, fine.options[1].names)
    assert.are.equal(1, #fine.options)
    assert.are.same({ "word" }, fine.words)
    for _, shell in ipairs { "bash", "zsh", "fish" } do
      local script = completion[shell]()
      assert.is_nil(script:find("touch x", 1, true))
      assert.is_nil(script:find("bad;rm", 1, true))
      assert.is_nil(script:find("$(x)", 1, true))
    end
    -- descriptions are quoted for each shell
    assert.matches("'fine:it'\\''s \\[quoted\\]\\: \"ok\" \\\\ $HOME `x` next line'", completion.zsh(), 1, true)
    assert.matches("-d 'it\\'s [quoted]: \"ok\" \\\\ $HOME `x` next line'", completion.fish(), 1, true)
  end)

  it("survives a command module that fails to load", function()
    cli.register("broken", "spec.no.such.module")
    registered[#registered + 1] = "broken"
    local cmds = completion.model()
    local found
    for _, c in ipairs(cmds) do
      if c.name == "broken" then found = c end
    end
    assert.is_table(found)
    assert.are.same({}, found.options)
  end)

  it("rejects unknown shells as usage errors", function()
    local ok, err, code = completion.run({}, { "tcsh" })
    assert.is_nil(ok)
    assert.matches("^completion: unknown shell 'tcsh'.*: use bash, zsh or fish$", err)
    assert.are.equal(2, code)
    assert.are.same({ nil, "completion: unknown shell 'bsh' (did you mean 'bash'?): use bash, zsh or fish", 2 },
      { completion.run({}, { "bsh" }) })
    ok, err, code = completion.run({}, {})
    assert.is_nil(ok)
    assert.matches("missing shell", err, 1, true)
    assert.are.equal(2, code)
  end)
end)
