--- `lumu nag [PATH...]`: static security analysis of CloudFormation
-- templates (cfn_nag-style rules, no AWS calls).  See lumu.nag.
--
-- PATH: a template (.json, .yaml, .yml, .template) or a directory searched
-- recursively for them (hidden entries, node_modules and lua_modules
-- skipped; files without a Resources section skipped).  Without PATH: a
-- usage error for now (later: the `lumu synth` output of the project).
-- stdout: the report (-o text|json|sarif) or the rule list (--list-rules).
-- stderr: unreadable templates as "lumu: nag: FILE:LINE:COL: message";
-- files found in a directory that do not parse and do not look like
-- templates (no AWSTemplateFormatVersion, no top-level Resources) are
-- skipped with "lumu: nag: warning: skipped FILE:LINE:COL: message".
-- Exit: 0 clean (warnings allowed unless --fail-on-warnings), 1 failures,
-- 2 usage errors (bad option/path/rule id/rule file, unreadable or
-- non-template file given explicitly; the other templates are still
-- reported).
-- ctx.stdout / ctx.stderr (file-like) replace io.stdout / io.stderr (tests).
local nag = require "lumu.nag"
local fs = require "lumu.fs"

local USAGE = "lumu nag [-o text|json|sarif] [--fail-on-warnings] [--no-suppress] [--rules DIR]... "
  .. "[--deny RULE,...] [--allow RULE,...] [--list-rules] PATH..."

local M = {
  summary = "static security analysis of CloudFormation templates (cfn_nag-style, no AWS calls)",
  usage = USAGE,
  help = [[
Checks CloudFormation templates against security rules: world-open security
groups, wildcard IAM policies, unencrypted or public data stores, plaintext
secrets, missing logging, old TLS, and more (lumu nag --list-rules).
PATH is a template (.json, .yaml, .yml, .template) or a directory searched
recursively.  Text output has one line per finding:
  FILE: RESOURCE: RULE [FAIL|WARN] message (line N, path)
Suppress a finding on its resource with a reason:
  Metadata: {lumu_nag: {rules_to_suppress: [{id: W11, reason: "..."}]}}
(cfn_nag's Metadata.cfn_nag.rules_to_suppress with cfn_nag ids works too);
a suppression without a reason is failure F37.  Team rules: Lua files in
--rules DIR, or lumu.nag.rules.* modules on package.path.
Exit status: 0 clean (or warnings only), 1 failures (or warnings with
--fail-on-warnings), 2 usage errors and unreadable templates.]],
  options = {
    { "-o", "--output", arg = "FORMAT", choices = { "text", "json", "sarif" }, files = false,
      desc = "report format: text (default), json or sarif (SARIF 2.1.0)" },
    { "--fail-on-warnings", desc = "exit 1 on warnings too" },
    { "--no-suppress", desc = "ignore suppressions in template Metadata" },
    { "--rules", arg = "DIR", multi = true, desc = "also load team rules: a directory of *.lua files, a file or a module (repeatable)" },
    { "--list-rules", desc = "list the rules (in the -o format) and exit" },
    { "--deny", arg = "RULES", multi = true, files = false, desc = "run only these rule ids (comma separated, repeatable)" },
    { "--allow", arg = "RULES", multi = true, files = false, desc = "skip these rule ids (comma separated, repeatable)" },
    { "-h", "--help", desc = "this help" },
  },
}

local function ids(list)
  if list == nil then return nil end
  local out = {}
  for _, s in ipairs(list) do
    for id in s:gmatch("[^,%s]+") do out[#out + 1] = id end
  end
  return out
end

-- The rule set: built-in + discovered + --rules.  -> all, selected | nil, err
local function rule_set(opts)
  local all, err = nag.rules()
  if not all then return nil, err end
  local lists = { all }
  for _, spec in ipairs(opts.rules or {}) do
    local list, lerr = nag.load_rules(spec)
    if not list then return nil, lerr end
    lists[#lists + 1] = list
  end
  all, err = nag.combine(lists)
  if not all then return nil, err end
  local selected
  selected, err = nag.select(all, { only = ids(opts.deny), skip = ids(opts.allow) })
  if not selected then return nil, err end
  return all, selected
end

-- Template files named by the arguments: list of {path=, explicit=} | nil, err
local function collect(args)
  local files = {}
  for _, a in ipairs(args) do
    if fs.isdir(a) then
      local found, err = nag.find(a)
      if not found then return nil, err end
      if #found == 0 then
        return nil, a .. ": no templates (*.json, *.yaml, *.yml, *.template) found"
      end
      for _, f in ipairs(found) do files[#files + 1] = { path = f, dir = a } end
    elseif fs.isfile(a) then
      files[#files + 1] = { path = a, explicit = true }
    elseif fs.exists(a) then
      return nil, a .. ": not a regular file or directory"
    else
      return nil, a .. ": No such file or directory"
    end
  end
  return files
end

-- Whether an unparsable file found in a directory was meant as a template.
local function looks_like_template(path)
  local text = fs.read(path) or ""
  return text:find("AWSTemplateFormatVersion", 1, true) ~= nil
      or text:find("^%s*[\"']?Resources[\"']?%s*:") ~= nil
      or text:find("\n[\"']?Resources[\"']?%s*:") ~= nil
end

function M.run(ctx, args, opts)
  local out = ctx and ctx.stdout or io.stdout
  local err = ctx and ctx.stderr or io.stderr
  local fmt = opts.output or "text"
  if fmt ~= "text" and fmt ~= "json" and fmt ~= "sarif" then
    return nil, "nag: unknown output format '" .. tostring(fmt) .. "' (text, json or sarif)", 2
  end
  local all, selected = rule_set(opts)
  if not all then return nil, "nag: " .. selected, 2 end
  if opts.list_rules then
    out:write(nag.list(selected, fmt))
    return 0
  end
  if #args == 0 then
    return nil, "nag: no template given (usage: " .. USAGE .. ")", 2
  end
  local files, cerr = collect(args)
  if not files then return nil, "nag: " .. cerr, 2 end

  local results, errors, by_dir = {}, 0, {}
  for _, f in ipairs(files) do
    local tpl, pos = nag.load_file(f.path)
    if tpl == nil and not f.explicit and not looks_like_template(f.path) then
      -- some other YAML/JSON file found in a directory (k8s manifests ...)
      err:write("lumu: nag: warning: skipped ", pos, "\n")
    elseif tpl == nil then
      err:write("lumu: nag: ", pos, "\n")
      errors = errors + 1
    elseif not nag.is_template(tpl) then
      if f.explicit then
        err:write("lumu: nag: ", f.path, ": not a CloudFormation template (no Resources section)\n")
        errors = errors + 1
      end
    else
      if f.dir then by_dir[f.dir] = true end
      local ok, res = pcall(nag.scan, tpl, { filename = f.path, positions = pos, rules = all,
        only = ids(opts.deny), skip = ids(opts.allow), no_suppress = opts.no_suppress })
      if not ok then return nil, tostring(res), 2 end
      results[#results + 1] = res
    end
  end
  for _, a in ipairs(args) do
    if fs.isdir(a) and not by_dir[a] and errors == 0 then
      return nil, "nag: " .. a .. ": no CloudFormation templates found", 2
    end
  end
  if errors > 0 and #results == 0 then return 2 end
  local merged = nag.merge(results)
  merged.rules = selected
  out:write(nag.format(merged, fmt))
  if errors > 0 then return 2 end
  local failures, warnings = nag.counts(merged)
  if failures > 0 or (opts.fail_on_warnings and warnings > 0) then return 1 end
  return 0
end

return M
