--- The interactive read-eval-print loop of `lumu -i`, bare `lumu` on a
-- terminal and `lumu repl`, in the manner of lua.c.
--
-- repl.run(ctx) -> exit code (0 at end of input)
--   ctx.debug: show tracebacks with errors.  Reads from the terminal with
--   line editing, history and TAB completion (lumu._repl, libedit) when
--   standard input is a terminal; otherwise reads plain lines from stdin,
--   writing the prompts to stdout like lua.c built without readline.
--   History: $LUMU_HISTORY, else ~/.lumu_history; none when LUMU_HISTORY is
--   set to "" or HOME is unset/empty.
--
-- repl.loop(rw) -> exit code: the loop itself, with its input and output
--   given as functions (used by run and by tests):
--     rw.read(prompt) -> line | nil (end of input) | false (Ctrl-C: abandon)
--     rw.write(s)      results (stdout)
--     rw.error(s)      error messages (stderr)
--     rw.history(s)    optional: called with each complete chunk entered
--     rw.debug         optional: tracebacks with errors
--
-- Behaviour (lua.c's): prompts are tostring(_PROMPT) and tostring(_PROMPT2)
-- when set, else "> " and ">> ".  A line is first compiled as
-- `return <line>;` (a leading "=" also means "return"); if that fails, as a
-- statement, reading more lines with the second prompt while the chunk is
-- incomplete (its syntax error ends in "<eof>").  The chunk runs through
-- lumu._host.docall, so Ctrl-C interrupts it; its values are printed
-- separated by tabs, tables with lumu.pretty.format, others with tostring.
-- Errors print "lumu: <message>" (with a traceback when debugging) and the
-- loop goes on.
--
-- repl.complete(line, word [, env]) -> { candidate, ... }
--   TAB completion: `word` is the `name.field:method` chain before the
--   cursor; candidates are full replacements of it, sorted.  Names come from
--   env (default _G) and the tables reached through fields, the __index
--   tables of their metatables (strings complete with the string library)
--   and, for lazy tables, a `__complete` metafield: function(t) -> list of
--   names.  No __index function is called.
local host = require "lumu._host"
local pretty = require "lumu.pretty"

local M = {}

M.PROMPT, M.PROMPT2 = "> ", ">> "

local EOFMARK = "<eof>"

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not
  or repeat return then true until while]]):gmatch("%a+") do KEYWORDS[#KEYWORDS + 1] = w end

-- Message of a failed docall: without the traceback unless debugging, and
-- without the REPL's own frames (from the docall that ran the chunk on).
local function message(err, debug)
  err = tostring(err)
  if debug then return (err:gsub("\n\t%[C%]: in function 'lumu%._host%.docall'.*$", "")) end
  return (err:gsub("\nstack traceback:.*$", ""))
end

local function prompt(name, default)
  local p = rawget(_G, name)
  if p == nil then return default end
  local ok, s = pcall(tostring, p)
  return ok and type(s) == "string" and s or default
end

-- One line of output for the values of an expression.
local function format_values(res)
  local parts = {}
  for i = 2, res.n do
    local v = res[i]
    parts[#parts + 1] = type(v) == "table" and pretty.format(v) or tostring(v)
  end
  return table.concat(parts, "\t")
end

-- Reads one chunk.  Returns fn, nil (compiled) | nil, err (syntax error) |
-- nil, nil, "eof" | nil, nil, "interrupt".
local function read_chunk(rw)
  local line = rw.read(prompt("_PROMPT", M.PROMPT))
  if line == nil then return nil, nil, "eof" end
  if line == false then return nil, nil, "interrupt" end
  local typed = line
  if line:sub(1, 1) == "=" then line = "return " .. line:sub(2) end -- Lua 5.2 style
  local fn = load("return " .. line .. ";", "=stdin")
  if fn then
    if typed ~= "" and rw.history then rw.history(typed) end
    return fn
  end
  local chunk = line
  while true do
    local err
    fn, err = load(chunk, "=stdin")
    if fn or err:sub(-#EOFMARK) ~= EOFMARK then break end
    local more = rw.read(prompt("_PROMPT2", M.PROMPT2))
    if more == false then return nil, nil, "interrupt" end
    if more == nil then break end -- lua.c: report the incomplete chunk
    chunk = chunk .. "\n" .. more
    typed = typed .. "\n" .. more
  end
  if rw.history then rw.history(typed) end
  if fn then return fn end
  return nil, select(2, load(chunk, "=stdin"))
end

-- One read-eval-print step.  Returns "eof" at the end of input.
local function step(rw)
  local fn, err, what = read_chunk(rw)
  if what == "eof" then return "eof" end
  if what == "interrupt" then
    rw.write("^C\n")
    return
  end
  if not fn then
    rw.error("lumu: " .. message(err, rw.debug) .. "\n")
    return
  end
  local res = table.pack(host.docall(fn))
  if not res[1] then
    local msg = tostring(res[2])
    if msg:find("interrupted!", 1, true) then
      -- on a new line: the terminal has echoed ^C
      rw.error("\nlumu: " .. (rw.debug and message(msg, true) or "interrupted") .. "\n")
    else
      rw.error("lumu: " .. message(msg, rw.debug) .. "\n")
    end
    return
  end
  if res.n > 1 then
    local ok, text = host.docall(format_values, res)
    if ok then
      rw.write(text .. "\n")
    else
      rw.error("lumu: error printing the result: " .. message(text, rw.debug) .. "\n")
    end
  end
end

function M.loop(rw)
  while true do
    -- each step is protected: a Ctrl-C that lands outside the chunk (while
    -- compiling, printing) must not end the REPL
    local ok, res = host.docall(step, rw)
    if ok and res == "eof" then break end
    if not ok then
      local err = tostring(res)
      if err:find("interrupted!", 1, true) then
        rw.write("^C\n")
      else
        rw.error("lumu: internal error in the REPL: " .. message(err, rw.debug) .. "\n")
        return 3
      end
    end
  end
  rw.write("\n") -- lua.c ends the session with a newline
  return 0
end

-- Completion ---------------------------------------------------------------

local MAX_CHAIN = 32   -- name.field... links followed
local MAX_INDEX = 16   -- __index tables followed per value
local MAX_NAMES = 5000 -- candidates returned

-- The table of names `v` offers (itself, or the __index table of its
-- metatable), or nil.
local function namespace(v)
  if type(v) == "table" then return v end
  local mt = getmetatable(v) -- strings: the string library
  if type(mt) == "table" and type(rawget(mt, "__index")) == "table" then
    return rawget(mt, "__index")
  end
  return nil
end

-- t[k] without calling metamethods (follows __index tables).
local function lookup(t, k)
  for _ = 1, MAX_INDEX do
    local v = rawget(t, k)
    if v ~= nil then return v end
    local mt = getmetatable(t)
    local idx = type(mt) == "table" and rawget(mt, "__index")
    if type(idx) ~= "table" then return nil end
    t = idx
  end
  return nil
end

-- Adds the identifier keys of t (and of its __index tables) starting with
-- prefix to `out`.
local function collect(t, prefix, methods_only, out, seen)
  for _ = 1, MAX_INDEX do
    if type(t) ~= "table" or seen[t] then return end
    seen[t] = true
    for k, v in next, t do
      if type(k) == "string" and k:sub(1, #prefix) == prefix and k:match("^[%a_][%w_]*$")
        and (not methods_only or type(v) == "function") then
        out[k] = true
      end
    end
    local mt = getmetatable(t)
    if type(mt) ~= "table" then return end
    local lazy = rawget(mt, "__complete")
    if type(lazy) == "function" then
      local ok, names = pcall(lazy, t)
      if ok and type(names) == "table" then
        for _, k in ipairs(names) do
          if type(k) == "string" and k:sub(1, #prefix) == prefix then out[k] = true end
        end
      end
    end
    t = rawget(mt, "__index")
  end
end

function M.complete(line, word, env)
  env = env or _G
  word = word or (line or ""):match("[%w_.:]*$")
  local out, seen = {}, {}
  local path, sep, partial = word:match("^(.-)([.:])([%a_]?[%w_]*)$")
  if not path then
    if not word:match("^[%a_]?[%w_]*$") or word == "" then return {} end
    collect(env, word, false, out, seen)
    for _, k in ipairs(KEYWORDS) do
      if k:sub(1, #word) == word then out[k] = true end
    end
    path, sep, partial = nil, "", word
  else
    -- resolve a.b.c (a ':' may only come last)
    if not path:match("^[%a_][%w_]*$") and not path:match("^[%a_][%w_]*[%.%w_]*[%w_]$") then
      return {}
    end
    local v = env
    local n = 0
    for name in path:gmatch("[^.]+") do
      n = n + 1
      local ns = namespace(v)
      if n > MAX_CHAIN or not ns or not name:match("^[%a_][%w_]*$") then return {} end
      v = lookup(ns, name)
      if v == nil then return {} end
    end
    local ns = namespace(v)
    if not ns then return {} end
    collect(ns, partial, sep == ":", out, seen)
  end
  local list = {}
  for k in pairs(out) do
    list[#list + 1] = (path and (path .. sep) or "") .. k
  end
  table.sort(list)
  if #list > MAX_NAMES then
    for i = #list, MAX_NAMES + 1, -1 do list[i] = nil end
  end
  return list
end

-- Terminal and history -------------------------------------------------------

--- The history file: $LUMU_HISTORY, else $HOME/.lumu_history, else nil.
function M.history_path()
  local p = os.getenv("LUMU_HISTORY")
  if p ~= nil then return p ~= "" and p or nil end
  local home = os.getenv("HOME")
  if home == nil or home == "" then return nil end
  return home .. "/.lumu_history"
end

-- Line-editing io for a terminal.
local function tty_io(debug, fallback)
  local loaded, edit = pcall(require, "lumu._repl")
  if not loaded then
    -- libedit.so.2 is loaded on first use: without it the REPL still works,
    -- without line editing.
    io.stderr:write("lumu: warning: no line editing: ", tostring(edit), "\n")
    return fallback(debug)
  end
  local path = M.history_path()
  local warned = false
  local function warn(what, err)
    if warned then return end
    warned = true
    io.stderr:write("lumu: warning: cannot ", what, " the history: ", tostring(err),
      " (LUMU_HISTORY= turns it off)\n")
  end
  if path then
    local ok, err, code = edit.history_load(path)
    if not ok and code ~= 2 then warn("read", err) end -- ENOENT: no history yet
  end
  edit.set_completer(function(line, word) return M.complete(line, word) end)
  local last
  return {
    read = function(p)
      io.stdout:flush()
      return edit.readline(p)
    end,
    write = function(s)
      io.stdout:write(s)
      io.stdout:flush()
    end,
    error = function(s) io.stderr:write(s) end,
    history = function(s)
      if s == last then return end
      last = s
      edit.add_history(s)
      if path then
        local ok, err = edit.history_save(path)
        if not ok then warn("save", err) end
      end
    end,
    debug = debug,
  }
end

-- Plain io for a pipe or file: prompts to stdout, no echo (lua.c without
-- readline).
local function plain_io(debug)
  return {
    read = function(p)
      io.stdout:write(p)
      io.stdout:flush()
      return io.stdin:read("l")
    end,
    write = function(s)
      io.stdout:write(s)
      io.stdout:flush()
    end,
    error = function(s)
      io.stdout:flush()
      io.stderr:write(s)
    end,
    debug = debug,
  }
end

function M.run(ctx)
  ctx = ctx or {}
  local io_ = host.isatty(0) and tty_io(ctx.debug, plain_io) or plain_io(ctx.debug)
  local code = M.loop(io_)
  io.stdout:flush()
  return code
end

return M
