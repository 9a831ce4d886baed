--- `lumu completion bash|zsh|fish`: prints a shell completion script.
--
-- The script is generated from the registered commands (cli.names(), so
-- commands registered later appear automatically), their aliases, each
-- command's options spec and the global flags.  Positional arguments
-- complete as file names, except for `help` (command names) and commands
-- whose table has `complete = {"word", ...}`; an option with `choices =
-- {...}` completes its value from them, other options taking a value
-- complete file names (unless the spec says `files = false`: no completion).
--
-- Names that are not plain words (commands: [%w_.-], options: -x, --x-y)
-- are left out, so a hostile registration cannot inject shell code;
-- descriptions are quoted for each shell.
local cli = require "lumu.cli"

local M = {
  summary = "print a shell completion script (bash, zsh or fish)",
  usage = "lumu completion bash|zsh|fish",
  help = [[
Prints a script that completes lumu's commands, their options and file
names.  Install it with one of:

  bash:  echo 'source <(lumu completion bash)' >> ~/.bashrc
         (or: lumu completion bash > ~/.local/share/bash-completion/completions/lumu)
  zsh:   lumu completion zsh > "${fpath[1]}/_lumu"   (then start a new shell;
         compinit must be enabled), or: source <(lumu completion zsh)
  fish:  lumu completion fish > ~/.config/fish/completions/lumu.fish

Regenerate it after upgrading lumu to pick up new commands and options.]],
  options = {
    { "-h", "--help", desc = "this help" },
  },
  complete = { "bash", "zsh", "fish" },
}

M.SHELLS = { bash = true, zsh = true, fish = true }

-- Global flags (before the command), as option specs.
M.GLOBAL = {
  { "--debug", desc = "show tracebacks with errors" },
  { "--no-color", desc = "no colour in output" },
  { "-h", "--help", desc = "show help" },
  { "--version", desc = "print the version" },
  { "-e", arg = "CHUNK", files = false, desc = "run a Lua chunk" },
  { "-l", arg = "MOD", files = false, desc = "require a module into a global" },
  { "-i", desc = "interactive prompt after the script" },
  { "-v", desc = "print the version" },
  { "-E", desc = "ignore LUA_* environment variables" },
  { "-W", desc = "turn warnings on" },
}

local function is_word(s) return type(s) == "string" and s:match("^[%w][%w_.%-]*$") ~= nil end
local function is_option(s)
  return type(s) == "string" and (s:match("^%-[%w]$") or s:match("^%-%-?[%w][%w_%-]*$")) ~= nil
end

-- Options of a spec with valid names only: { {names=, arg=, desc=, choices=} }.
local function clean_options(spec)
  local out = {}
  for _, o in ipairs(type(spec) == "table" and spec or {}) do
    if type(o) == "table" then
      local names = {}
      for _, n in ipairs(o) do
        if is_option(n) then names[#names + 1] = n end
      end
      local choices
      if type(o.choices) == "table" then
        choices = {}
        for _, c in ipairs(o.choices) do
          if is_word(c) then choices[#choices + 1] = c end
        end
      end
      if #names > 0 then
        out[#out + 1] = { names = names, arg = o.arg ~= nil, desc = tostring(o.desc or ""), choices = choices,
          files = o.files ~= false }
      end
    end
  end
  return out
end

--- The data the scripts are generated from: a list of
-- {name=, summary=, options=, words=} (words: positional completions, or
-- nil for file names), sorted by name, aliases included.
function M.model()
  local cmds = {}
  local names = {}
  for _, n in ipairs(cli.names()) do names[#names + 1] = n end
  for alias in pairs(cli.aliases or {}) do names[#names + 1] = alias end
  table.sort(names)
  local all = {}
  for _, n in ipairs(names) do
    if is_word(n) then all[#all + 1] = n end
  end
  for _, n in ipairs(all) do
    local ok, cmd = pcall(cli.command, n)
    if not ok or type(cmd) ~= "table" then cmd = {} end
    local words
    if (cli.aliases and cli.aliases[n] or n) == "help" then
      words = all
    elseif type(cmd.complete) == "table" then
      words = {}
      for _, w in ipairs(cmd.complete) do
        if is_word(w) then words[#words + 1] = w end
      end
    end
    local summary = cmd.summary or ""
    if cli.aliases and cli.aliases[n] then summary = "alias for " .. cli.aliases[n] end
    cmds[#cmds + 1] = { name = n, summary = tostring(summary), options = clean_options(cmd.options), words = words }
  end
  return cmds, clean_options(M.GLOBAL)
end

local function option_names(opts)
  local t = {}
  for _, o in ipairs(opts) do
    for _, n in ipairs(o.names) do t[#t + 1] = n end
  end
  return table.concat(t, " ")
end

local function names_of(cmds)
  local t = {}
  for _, c in ipairs(cmds) do t[#t + 1] = c.name end
  return table.concat(t, " ")
end

-- bash -----------------------------------------------------------------------

local function bash_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function M.bash()
  local cmds, global = M.model()
  local out = {}
  local function w(s) out[#out + 1] = s end
  w([==[
# bash completion for lumu (generated by `lumu completion bash`).
# Install: add   source <(lumu completion bash)   to ~/.bashrc, or save it as
#   ~/.local/share/bash-completion/completions/lumu
_lumu_files() {
    local f
    compopt -o filenames 2>/dev/null || :
    while IFS= read -r f; do COMPREPLY+=("$f"); done < <(compgen -f -- "$1")
}
_lumu_words() {
    local f
    while IFS= read -r f; do COMPREPLY+=("$f"); done < <(compgen -W "$1" -- "$2")
}
_lumu() {
    local cur=${COMP_WORDS[COMP_CWORD]:-} prev= cmd= w i
    (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]:-}
    if [[ $cur == = ]]; then
        cur=
    elif [[ $prev == = ]] && (( COMP_CWORD > 1 )); then
        prev=${COMP_WORDS[COMP_CWORD-2]:-}
    fi
    COMPREPLY=()
    for (( i = 1; i < COMP_CWORD; i++ )); do
        w=${COMP_WORDS[i]:-}
        case $w in
            --debug|--no-color) ;;
            -*) cmd=-; break ;;
            *) cmd=$w; break ;;
        esac
    done
    case $cmd in
    '')
        if [[ $cur == -* ]]; then]==])
  w("            _lumu_words " .. bash_quote(option_names(global)) .. ' "$cur"')
  w("        else")
  w("            _lumu_words " .. bash_quote(names_of(cmds)) .. ' "$cur"')
  w([==[
            _lumu_files "$cur"
        fi ;;]==])
  local noval = {}
  for _, o in ipairs(global) do
    if o.arg and not o.files then noval[#noval + 1] = table.concat(o.names, "|") end
  end
  if #noval > 0 then
    w("    -) case $prev in " .. table.concat(noval, "|") .. ') return 0 ;; esac; _lumu_files "$cur" ;;')
  else
    w('    -) _lumu_files "$cur" ;;')
  end
  for _, c in ipairs(cmds) do
    w("    " .. c.name .. ")")
    local with_arg = {}
    for _, o in ipairs(c.options) do
      if o.arg then
        local pat = table.concat(o.names, "|")
        if o.choices then
          w("        case $prev in " .. pat .. ") _lumu_words " .. bash_quote(table.concat(o.choices, " "))
            .. ' "$cur"; return 0 ;; esac')
        elseif not o.files then
          w("        case $prev in " .. pat .. ") return 0 ;; esac")
        else
          with_arg[#with_arg + 1] = pat
        end
      end
    end
    if #with_arg > 0 then
      w("        case $prev in " .. table.concat(with_arg, "|") .. ') _lumu_files "$cur"; return 0 ;; esac')
    end
    local positional = c.words and ("_lumu_words " .. bash_quote(table.concat(c.words, " ")) .. ' "$cur"')
      or '_lumu_files "$cur"'
    if #c.options > 0 then
      w("        if [[ $cur == -* ]]; then _lumu_words " .. bash_quote(option_names(c.options))
        .. ' "$cur"; else ' .. positional .. "; fi ;;")
    else
      w("        " .. positional .. " ;;")
    end
  end
  w([==[
    *) _lumu_files "$cur" ;;
    esac
    return 0
}
complete -F _lumu lumu]==])
  return table.concat(out, "\n") .. "\n"
end

-- zsh ------------------------------------------------------------------------

local function zsh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
-- text inside an _arguments [description] or a _describe "name:description"
local function zsh_desc(s) return (s:gsub("[%c]", " "):gsub("([%[%]:\\])", "\\%1")) end

local function zsh_optspecs(opts)
  local specs = {}
  for _, o in ipairs(opts) do
    local action = ""
    if o.arg then
      action = o.choices and (":value:(" .. table.concat(o.choices, " ") .. ")")
        or o.files and ":file:_files" or ":value: "
    end
    local desc = "[" .. zsh_desc(o.desc) .. "]"
    if #o.names == 1 then
      specs[#specs + 1] = zsh_quote(o.names[1] .. desc .. action)
    else
      local excl = "(" .. table.concat(o.names, " ") .. ")"
      specs[#specs + 1] = zsh_quote(excl) .. "{" .. table.concat(o.names, ",") .. "}" .. zsh_quote(desc .. action)
    end
  end
  return specs
end

function M.zsh()
  local cmds, global = M.model()
  local out = {}
  local function w(s) out[#out + 1] = s end
  w([==[
#compdef lumu
# zsh completion for lumu (generated by `lumu completion zsh`).
# Install: lumu completion zsh > "${fpath[1]}/_lumu"  (compinit enabled), or
#   source <(lumu completion zsh)  after compinit.
_lumu() {
  local curcontext=$curcontext state state_descr line ret=1
  typeset -A opt_args
  local -a commands
  commands=(]==])
  for _, c in ipairs(cmds) do w("    " .. zsh_quote(zsh_desc(c.name) .. ":" .. zsh_desc(c.summary))) end
  w("  )")
  w("  _arguments -C -S \\")
  for _, s in ipairs(zsh_optspecs(global)) do w("    " .. s .. " \\") end
  w([==[
    '1: :->command' \
    '*:: :->args' && ret=0
  case $state in
    command)
      _alternative 'commands:command:_describe -t commands command commands' 'files:file:_files' && ret=0
      ;;
    args)
      case $words[1] in]==])
  for _, c in ipairs(cmds) do
    local specs = zsh_optspecs(c.options)
    local positional = c.words and ("'*:argument:(" .. table.concat(c.words, " ") .. ")'") or "'*:file:_files'"
    specs[#specs + 1] = positional
    w("        " .. c.name .. ")")
    w("          _arguments -S " .. table.concat(specs, " ") .. " && ret=0 ;;")
  end
  w([==[
        *) _files && ret=0 ;;
      esac
      ;;
  esac
  return ret
}
if [[ ${zsh_eval_context[-1]:-} == loadautofunc ]]; then
  _lumu "$@"
else
  compdef _lumu lumu
fi]==])
  return table.concat(out, "\n") .. "\n"
end

-- fish -----------------------------------------------------------------------

local function fish_quote(s) return "'" .. s:gsub("[%c]", " "):gsub("([\\'])", "\\%1") .. "'" end

local function fish_option(cond, o)
  local parts = { "complete -c lumu" }
  if cond then parts[#parts + 1] = "-n " .. fish_quote(cond) end
  for _, n in ipairs(o.names) do
    if n:match("^%-%-") then
      parts[#parts + 1] = "-l " .. n:sub(3)
    elseif #n == 2 then
      parts[#parts + 1] = "-s " .. n:sub(2)
    else
      parts[#parts + 1] = "-o " .. n:sub(2)
    end
  end
  if o.arg then
    if o.choices then
      parts[#parts + 1] = "-x -a " .. fish_quote(table.concat(o.choices, " "))
    elseif not o.files then
      parts[#parts + 1] = "-x"
    else
      parts[#parts + 1] = "-r -F"
    end
  end
  parts[#parts + 1] = "-d " .. fish_quote(o.desc)
  return table.concat(parts, " ")
end

function M.fish()
  local cmds, global = M.model()
  local out = {}
  local function w(s) out[#out + 1] = s end
  w("# fish completion for lumu (generated by `lumu completion fish`).")
  w("# Install: lumu completion fish > ~/.config/fish/completions/lumu.fish")
  w("complete -c lumu -e")
  local all = names_of(cmds)
  local top = "not __fish_seen_subcommand_from " .. all
  for _, o in ipairs(global) do w(fish_option(top, o)) end
  for _, c in ipairs(cmds) do
    w("complete -c lumu -n " .. fish_quote("__fish_use_subcommand") .. " -f -a " .. fish_quote(c.name)
      .. " -d " .. fish_quote(c.summary))
  end
  for _, c in ipairs(cmds) do
    local cond = "__fish_seen_subcommand_from " .. c.name
    for _, o in ipairs(c.options) do w(fish_option(cond, o)) end
    if c.words then
      w("complete -c lumu -n " .. fish_quote(cond) .. " -f -a " .. fish_quote(table.concat(c.words, " ")))
    end
  end
  return table.concat(out, "\n") .. "\n"
end

function M.run(_, args)
  local shell = args[1]
  if shell == nil then
    return nil, "completion: missing shell: bash, zsh or fish (see 'lumu help completion')", cli.EXIT.usage
  end
  if not M.SHELLS[shell] or #args > 1 then
    local bad = M.SHELLS[shell] and args[2] or shell
    local s = cli.suggest(bad, { "bash", "zsh", "fish" })
    return nil, string.format("completion: unknown shell '%s'%s: use bash, zsh or fish", bad,
      s and (" (did you mean '" .. s .. "'?)") or ""), cli.EXIT.usage
  end
  io.stdout:write(M[shell]())
end

return M
