--- `lumu synth [-c FILE] [-o DIR] [--format json|yaml] [-n NS] [--env NAME]...
-- [--schemas DIR] [--no-nag]`: writes the CloudFormation of every stack, without AWS.
--
-- For every stack (lumu.synth.plan order) DIR gets <stack>.template.json (or
-- .yaml), <stack>.parameters.json ([{ParameterKey, ParameterValue}], as the
-- AWS CLI takes them) and <stack>.tags.json ([{Key, Value}]), plus
-- README.txt indexing them.  A catalog-provision entry (a pipeline
-- provisioned from a Service Catalog product) has no template: only its
-- parameters and tags.  Stack assets (the catalog's product version
-- templates) go to DIR/assets/<key>, to upload before the stack deploys.
-- Nothing is written until every check passed, so a failed run writes
-- nothing.  A new DIR is written beside it and renamed into place; an
-- existing one is updated in place (see publish: unchanged files are not
-- rewritten, changed ones are replaced whole).  Files of earlier runs that
-- this run does not produce are removed (only names ending in
-- .template.json/.template.yaml/.parameters.json/.tags.json, README.txt
-- and files under assets/).
-- The pipelines' source defaults come from the git checkout holding the
-- config (remote "origin": GitHub or CodeCommit; the current branch; the
-- config directory relative to the repository root): M.detect_git.
-- stdout: a table (stack, kind, resources, bytes, notes).  stderr: config
-- problems and generation errors, one per line; warnings as
-- "lumu: warning: KEY: message".
-- Before writing, `lumu nag` checks every template and asset (lumu.synth.nag,
-- built-in and team rules): failures are printed to stderr as nag's text
-- lines and nothing is written (exit 1); warnings get one stderr line
-- "lumu: nag: N warnings, M suppressed (lumu nag DIR shows them)" (none
-- when there are none).
-- --no-nag skips it.
-- Exit: 0 ok; 1 template problems (cfn checks; with --schemas also the
-- resource schemas), nag failures or a write failure; 2 usage,
-- configuration or generation errors (and team nag rules that do not load).
-- ctx.stdout / ctx.stderr (file-like) replace io.stdout / io.stderr, ctx.git
-- ({provider=, repo=, branch=, basedir=} or false: none) replaces the
-- detection (tests).
local config = require "lumu.config"
local synth = require "lumu.synth"
local fs = require "lumu.fs"

local M = {
  summary = "write the CloudFormation templates, parameters and tags of every stack (no AWS calls)",
  usage = "lumu synth [-c FILE] [-o DIR] [--format json|yaml] [-n NS] [--env NAME]... [--schemas DIR] [--no-nag]",
  help = [[
Loads the configuration (-c FILE, else lumu.lua, else mu.yml in the current
directory), generates the environment, service, database, pipeline and
catalog stacks with mu's overrides applied, checks every template and
writes, for each stack, DIR/<stack>.template.json|yaml,
DIR/<stack>.parameters.json and DIR/<stack>.tags.json, the catalog's
product templates under DIR/assets/, plus DIR/README.txt (DIR defaults to
lumu.out).  --env limits the environments (repeatable; pipelines and the
catalog are left out then); --schemas DIR also checks every resource
against the CloudFormation registry schemas in DIR (laid out like
../shared/cfn).  Pipelines without source.repo take it from the git
remote "origin" of the checkout holding the config.  Every template is
then checked by lumu nag (--no-nag skips it): nag failures stop the run,
warnings are counted.  Nothing is written when something fails.
Exit status: 0 ok, 1 template problems or nag failures, 2 usage or
configuration errors.]],
  options = {
    { "-c", "--config", arg = "FILE", desc = "configuration file (default: lumu.lua or mu.yml)" },
    { "-o", "--output", arg = "DIR", desc = "output directory (default: lumu.out)" },
    { "--format", arg = "FMT", desc = "template format: json (default) or yaml" },
    { "-n", "--namespace", arg = "NS", desc = "namespace (wins over MU_NAMESPACE and the file)" },
    { "--env", arg = "NAME", multi = true, desc = "only this environment (repeatable)" },
    { "--schemas", arg = "DIR", desc = "also check resources against the registry schemas in DIR" },
    { "--no-nag", desc = "do not run lumu nag on the templates" },
    { "-h", "--help", desc = "this help" },
  },
}

M.DEFAULT_OUTPUT = "lumu.out"

local OUR_FILE = { "%.template%.json$", "%.template%.yaml$", "%.parameters%.json$", "%.tags%.json$" }

local function ours(name)
  if name == "README.txt" or name == "assets" then return true end
  for i = 1, #OUR_FILE do
    if name:match(OUR_FILE[i]) then return true end
  end
  return false
end

local function pad(s, n)
  s = tostring(s)
  if #s >= n then return s end
  return s .. string.rep(" ", n - #s)
end

local function lpad(s, n)
  s = tostring(s)
  if #s >= n then return s end
  return string.rep(" ", n - #s) .. s
end

-- The stdout table.
local function table_text(stacks)
  local w = { #"stack", #"kind" }
  for _, d in ipairs(stacks) do
    w[1] = math.max(w[1], #d.name)
    w[2] = math.max(w[2], #d.kind)
  end
  local lines = { pad("stack", w[1]) .. "  " .. pad("kind", w[2]) .. "  resources    bytes  notes" }
  for _, d in ipairs(stacks) do
    lines[#lines + 1] = (pad(d.name, w[1]) .. "  " .. pad(d.kind, w[2]) .. "  " .. lpad(d.resources, 9) .. "  "
      .. lpad(d.size, 7) .. "  " .. table.concat(d.notes, "; ")):gsub("%s+$", "")
  end
  return table.concat(lines, "\n") .. "\n"
end

local function readme(stacks, model, path, ext)
  local lines = {
    "Generated by lumu synth " .. require("lumu.version").version .. " from " .. path
      .. " (namespace " .. model.namespace .. ").",
    "Deploy the stacks in this order; each has <stack>.template." .. ext .. ", <stack>.parameters.json",
    "([{ParameterKey, ParameterValue}]) and <stack>.tags.json ([{Key, Value}]).",
    "Stacks marked 'needs S3' exceed 51,200 bytes: upload the template and use --template-url.",
  }
  local any_assets, any_provision = false, false
  for _, d in ipairs(stacks) do
    if d.assets and #d.assets > 0 then any_assets = true end
    if not d.template then any_provision = true end
  end
  if any_assets then
    lines[#lines + 1] = "Files under assets/ go to the bucket a stack names (its 'assets' note) BEFORE that stack."
  end
  if any_provision then
    lines[#lines + 1] = "A 'catalog-provision' entry has no template: provision the named Service Catalog product"
    lines[#lines + 1] = "version as <name>, with <name>.parameters.json."
  end
  lines[#lines + 1] = ""
  for i, d in ipairs(stacks) do
    local extra = {}
    if d.needs_s3 then extra[#extra + 1] = "needs S3" end
    if not d.template then
      extra[#extra + 1] = "no template: product " .. tostring(d.product) .. " version " .. tostring(d.version)
    end
    if d.assets and #d.assets > 0 then
      local keys = {}
      for _, a in ipairs(d.assets) do keys[#keys + 1] = "assets/" .. a.key end
      extra[#extra + 1] = "assets to the bucket of " .. (d.assets[1].bucket_stack or "?") .. ": "
        .. table.concat(keys, ", ")
    end
    if #(d.depends or {}) > 0 then extra[#extra + 1] = "after " .. table.concat(d.depends, ", ") end
    lines[#lines + 1] = string.format("%3d. %s (%s): %s%s", i, d.name, d.kind, d.description or "",
      #extra > 0 and (" [" .. table.concat(extra, "; ") .. "]") or "")
  end
  return table.concat(lines, "\n") .. "\n"
end

local function write_file(path, data)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:setvbuf("no") -- one write(2) for the whole file, no fstat
  local ok, werr = f:write(data)
  if not ok then f:close(); return nil, path .. ": " .. tostring(werr) end
  local cok, cerr = f:close()
  if not cok then return nil, path .. ": " .. tostring(cerr) end
  return true
end

-- Writes files = {{name, data}...} into dir.  A new dir is written as a
-- fresh sibling directory, then renamed into place.  An existing dir is
-- updated in place: a file whose bytes are already there is left alone (no
-- new inode, no write: reruns of an unchanged config touch nothing), a
-- changed one is written to a temporary name beside it and renamed over
-- the old one (so each file is whole, old or new), and then outputs of
-- ours that this run did not produce are removed.
local function publish(dir, files)
  dir = dir:gsub("/+$", "")
  if dir == "" then dir = "/" end
  local parent, base = fs.dirname(dir), fs.basename(dir)
  if fs.exists(dir) then
    if not fs.isdir(dir) then return nil, dir .. ": exists and is not a directory" end
    return M._update(dir, files)
  end
  if not fs.isdir(parent) then
    local ok, err = fs.mkdir(parent)
    if not ok then return nil, err end
  end
  local tmp
  for i = 1, 100 do
    local candidate = fs.join(parent, string.format(".%s.lumu-synth-%d-%d", base, os.time() % 100000, i))
    if not fs.exists(candidate) then
      local ok = fs.mkdir(candidate, "700")
      if ok then tmp = candidate; break end
    end
  end
  if not tmp then return nil, "cannot create a temporary directory next to " .. dir end
  local function fail(err)
    fs.rmtree(tmp)
    return nil, err
  end
  for _, f in ipairs(files) do
    local full = fs.join(tmp, f[1])
    if f[1]:find("/", 1, true) then
      local ok, err = fs.mkdir(fs.dirname(full))
      if not ok then return fail(err) end
    end
    local ok, err = write_file(full, f[2])
    if not ok then return fail(err) end
  end
  local ok, err = os.rename(tmp, dir)
  if not ok then return fail(err) end
  fs.chmod(dir, "755")
  return true
end

-- publish() into an existing directory.
function M._update(dir, files)
  local wanted, dirs = {}, {}
  local tmpname = string.format(".lumu-synth-%d.tmp", os.time() % 100000)
  for _, f in ipairs(files) do
    local name, data = f[1], f[2]
    wanted[name] = true
    local full = fs.join(dir, name)
    local sub = name:match("^(.*)/[^/]+$")
    if sub and not dirs[sub] then
      local ok, err = fs.mkdir(fs.join(dir, sub))
      if not ok then return nil, err end
      dirs[sub] = true
    end
    if not fs.same(full, data) then
      local tmp = fs.join(fs.dirname(full), tmpname)
      local ok, err = write_file(tmp, data)
      if ok then ok, err = os.rename(tmp, full) end
      if not ok then
        fs.remove(tmp)
        return nil, err
      end
    end
  end
  -- stale outputs of ours: top-level names, and files under assets/
  for _, name in ipairs(fs.list(dir) or {}) do
    local p = fs.join(dir, name)
    if name == "assets" and fs.isdir(p) then
      local stale, empty = {}, {}
      for path, kind in fs.walk(p) do
        local rel = "assets/" .. path:sub(#p + 2) -- walk yields p .. "/" .. ...
        if kind == "directory" then empty[#empty + 1] = path
        elseif not wanted[rel] then stale[#stale + 1] = path end
      end
      for _, x in ipairs(stale) do fs.remove(x) end
      for i = #empty, 1, -1 do
        if #(fs.list(empty[i]) or { 1 }) == 0 then fs.remove(empty[i]) end
      end
      if #(fs.list(p) or { 1 }) == 0 then fs.remove(p) end
    elseif (ours(name) and not wanted[name]) or name:match("^%.lumu%-synth%-%d+%.tmp$") then
      if fs.isdir(p) then fs.rmtree(p) else fs.remove(p) end
    end
  end
  return true
end
M._publish = publish

-- ---------------------------------------------------------------------------
-- git: where the pipelines' source comes from when the config does not say
-- ---------------------------------------------------------------------------

-- A remote URL -> provider, repo (GitHub "owner/name", CodeCommit "name")
local function parse_remote(url)
  url = url:gsub("/+$", ""):gsub("%.git$", "")
  local slug = url:match("^[%w%-%.]+@github%.com:(.+)$") or url:match("^%a[%w+.-]*://[^/]*github%.com/(.+)$")
  if slug and slug:match("^[%w%-_%.]+/[%w%-_%.]+$") then return "GitHub", slug end
  local name = url:match("^%a+://git%-codecommit%.[%w%-]+%.amazonaws%.com[%w%.]*/v1/repos/([%w%-_%.]+)$")
    or url:match("^codecommit::[%w%-]+://([%w%-_%.]+)$") or url:match("^codecommit://([%w%-_%.]+)$")
    or url:match("^ssh://[^/]*git%-codecommit%.[%w%-]+%.amazonaws%.com[%w%.]*/v1/repos/([%w%-_%.]+)$")
  if name then return "CodeCommit", name end
  return nil
end
M._parse_remote = parse_remote

--- detect_git(dir) -> {provider=, repo=, branch=, basedir=} | nil
-- Reads (never runs git) the checkout holding dir: .git/config's remote
-- "origin", .git/HEAD's branch, and dir relative to the checkout root
-- ("." at the root).  nil outside a checkout; fields nil when unknown.
function M.detect_git(dir)
  local abs = fs.abspath(dir or ".")
  local root, gitdir = abs, nil
  for _ = 1, 64 do
    local g = fs.join(root, ".git")
    if fs.isdir(g) then gitdir = g; break end
    if fs.isfile(g) then
      local text = fs.read(g) or ""
      local target = text:match("^gitdir:%s*(%S+)")
      if target then gitdir = target:sub(1, 1) == "/" and target or fs.join(root, target) end
      break
    end
    if root == "/" then break end
    root = fs.dirname(root)
  end
  if not gitdir then return nil end
  local out = {}
  local rel = abs == root and "." or abs:sub(#root + 2)
  out.basedir = rel ~= "" and rel or "."
  local head = fs.read(fs.join(gitdir, "HEAD")) or ""
  out.branch = head:match("^ref:%s*refs/heads/(%S+)")
  -- a worktree's config lives in the common directory
  local common = (fs.read(fs.join(gitdir, "commondir")) or ""):match("^(%S+)")
  local cfgdir = common and (common:sub(1, 1) == "/" and common or fs.join(gitdir, common)) or gitdir
  local cfg = fs.read(fs.join(cfgdir, "config")) or ""
  local section
  for line in cfg:gmatch("[^\n]+") do
    local sec = line:match("^%s*%[(.-)%]%s*$")
    if sec then
      section = sec
    elseif section == 'remote "origin"' then
      local url = line:match("^%s*url%s*=%s*(%S+)")
      if url then out.provider, out.repo = parse_remote(url) end
    end
  end
  return out
end

function M.run(ctx, args, opts)
  local out = ctx and ctx.stdout or io.stdout
  local err = ctx and ctx.stderr or io.stderr
  if #args > 0 then
    return nil, "synth: unexpected argument '" .. args[1] .. "' (use -c FILE, -o DIR)", 2
  end
  local format = opts.format or "json"
  if format ~= "json" and format ~= "yaml" then
    return nil, "synth: --format must be json or yaml, got '" .. tostring(format) .. "'", 2
  end
  local checker
  if opts.schemas then
    local c, cerr = require("lumu.cfn").schema.open(opts.schemas)
    if not c then return nil, "synth: --schemas: " .. tostring(cerr), 2 end
    checker = c
  end
  local path = opts.config
  if not path then
    local found, ferr = config.find(".")
    if not found then return nil, "synth: " .. ferr, 2 end
    path = found
  end
  local model, problems = config.load(path, { namespace = opts.namespace })
  local nerr = 0
  for _, p in ipairs(problems or {}) do
    err:write(config.format_error(p), "\n")
    if p.severity ~= "warning" then nerr = nerr + 1 end
  end
  if not model then
    return nil, string.format("synth: %s: %d error%s, nothing written", path, nerr, nerr == 1 and "" or "s"), 2
  end

  local git = ctx and ctx.git
  if git == nil then
    git = M.detect_git(model.source and model.source.dir or fs.dirname(path))
  elseif git == false then
    git = nil
  end
  local stacks, report = synth.plan(model, { environments = opts.env, format = format, schemas = checker,
    git = git, fetch = true })
  for _, w in ipairs(report.warnings) do
    err:write("lumu: warning: ", (w.key and w.key ~= "") and (w.key .. ": ") or "", w.message, "\n")
  end
  for _, e in ipairs(report.errors) do err:write(synth.format_diag(e), "\n") end
  if #report.errors > 0 then
    return nil, string.format("synth: %d error%s, nothing written", #report.errors,
      #report.errors == 1 and "" or "s"), 2
  end
  if report.problems > 0 then
    for _, d in ipairs(stacks) do
      for _, p in ipairs(d.problems) do
        err:write(d.name, ": ", p.path ~= "" and (p.path .. ": ") or "", p.message, "\n")
      end
    end
    out:write(table_text(stacks))
    return nil, string.format("synth: %d template problem%s, nothing written", report.problems,
      report.problems == 1 and "" or "s"), 1
  end

  local nagline
  if not opts.no_nag then
    local results, nerr = synth.nag(stacks)
    if not results then return nil, "synth: nag: " .. tostring(nerr), 2 end
    local nag = require "lumu.nag"
    local failures, warnings, suppressed = nag.counts(results)
    if failures > 0 then
      for line in nag.format({ violations = results.violations, suppressed = {}, rules = results.rules,
        templates = results.templates, files = results.files }, "text"):gmatch("[^\n]+") do
        if line:find("%[FAIL%]") then err:write(line, "\n") end
      end
      out:write(table_text(stacks))
      return nil, string.format("synth: nag: %d failure%s, nothing written (--no-nag skips the check)", failures,
        failures == 1 and "" or "s"), 1
    end
    if warnings > 0 then
      nagline = string.format("lumu: nag: %d warning%s, %d suppressed (lumu nag %s shows them)\n", warnings,
        warnings == 1 and "" or "s", suppressed, opts.output or M.DEFAULT_OUTPUT)
    end
  end

  local ext = format == "yaml" and "yaml" or "json"
  local files = {}
  for _, d in ipairs(stacks) do
    if d.body then files[#files + 1] = { d.name .. ".template." .. ext, d.body } end
    files[#files + 1] = { d.name .. ".parameters.json", synth.parameters_json(d) }
    files[#files + 1] = { d.name .. ".tags.json", synth.tags_json(d) }
    for _, a in ipairs(d.assets or {}) do
      if not tostring(a.key):match("^[%w%-_%./]+$") or a.key:find("..", 1, true) or a.key:sub(1, 1) == "/" then
        return nil, "synth: " .. d.name .. ": bad asset key '" .. tostring(a.key) .. "'", 1
      end
      files[#files + 1] = { "assets/" .. a.key, a.body }
    end
  end
  files[#files + 1] = { "README.txt", readme(stacks, model, path, ext) }
  local dir = opts.output or M.DEFAULT_OUTPUT
  local ok, werr = publish(dir, files)
  if not ok then return nil, "synth: cannot write " .. dir .. ": " .. tostring(werr), 1 end
  out:write(table_text(stacks))
  if nagline then err:write(nagline) end
  return 0
end

return M
