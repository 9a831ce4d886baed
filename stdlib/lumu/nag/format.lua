--- Output formats of `lumu nag`: text, json and sarif (internal; see lumu.nag).
local json = require "lumu.json"
local engine = require "lumu.nag.engine"

local M = {}

local LABEL = { failure = "FAIL", warning = "WARN" }

local function plural(n, word)
  return string.format("%d %s%s", n, word, n == 1 and "" or "s")
end

local function where(v)
  local parts = {}
  if v.line then parts[#parts + 1] = "line " .. v.line end
  if v.path and v.path ~= "" then parts[#parts + 1] = v.path end
  if #parts == 0 then return "" end
  return " (" .. table.concat(parts, ", ") .. ")"
end

local function one_line(s)
  return (tostring(s):gsub("[\r\n]+", " "))
end

function M.summary(results)
  local f, w, s = engine.counts(results)
  return string.format("%s scanned: %s, %s, %s", plural(results.templates or 0, "template"),
    plural(f, "failure"), plural(w, "warning"), s .. " suppressed")
end

--- FILE: RESOURCE: RULE [FAIL|WARN] message (line N, path), one per line;
-- then suppressed findings as [SUPPRESSED] lines; then a summary line.
function M.text(results)
  local out = {}
  for _, v in ipairs(results.violations or {}) do
    out[#out + 1] = string.format("%s: %s: %s [%s] %s%s", v.file, v.resource, v.rule,
      LABEL[v.severity] or "?", one_line(v.message), where(v))
  end
  for _, v in ipairs(results.suppressed or {}) do
    out[#out + 1] = string.format("%s: %s: %s [SUPPRESSED] %s%s; reason (%s): %s", v.file, v.resource, v.rule,
      one_line(v.message), where(v), v.suppressed.source, one_line(v.suppressed.reason))
  end
  out[#out + 1] = M.summary(results)
  return table.concat(out, "\n") .. "\n"
end

local function jv(v)
  local o = json.ordered({
    file = v.file, resource = v.resource, type = v.type, rule = v.rule, severity = v.severity,
    message = v.message, path = v.path, line = v.line, column = v.column,
  }, { "file", "resource", "type", "rule", "severity", "message", "path", "line", "column" })
  if v.suppressed then
    o.suppression = json.object({ id = v.suppressed.id, reason = v.suppressed.reason, source = v.suppressed.source })
  end
  return o
end

function M.json(results)
  local f, w, s = engine.counts(results)
  local doc = json.ordered({
    summary = json.object({ templates = results.templates or 0, failures = f, warnings = w, suppressed = s }),
    violations = json.array({}),
    suppressed = json.array({}),
  }, { "summary", "violations", "suppressed" })
  for _, v in ipairs(results.violations or {}) do table.insert(doc.violations, jv(v)) end
  for _, v in ipairs(results.suppressed or {}) do table.insert(doc.suppressed, jv(v)) end
  return json.encode(doc, { pretty = true })
end

--- Rule list as JSON (for --list-rules).
function M.rule_json(r)
  return json.ordered({
    id = r.id, severity = r.severity, message = r.message, reason = r.reason,
    types = json.array({ table.unpack(r.types) }), aliases = json.array({ table.unpack(r.aliases or {}) }),
    source = r.source or "builtin",
  }, { "id", "severity", "message", "reason", "types", "aliases", "source" })
end

local function uri(path)
  local s = path:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end)
  if path:sub(1, 1) == "/" then return "file://" .. s end
  return s
end

local function rule_name(r)
  local words = {}
  for w in r.message:gmatch("[%w]+") do words[#words + 1] = w:sub(1, 1):upper() .. w:sub(2) end
  return table.concat(words):sub(1, 80)
end

--- SARIF 2.1.0: one run; rules in tool.driver.rules; suppressed findings are
-- results with a `suppressions` entry (kind inSource, justification).
function M.sarif(results, opts)
  local rules = results.rules or engine.builtin()
  local index = {}
  local descriptors = json.array({})
  for i, r in ipairs(rules) do
    index[r.id] = i - 1
    descriptors[#descriptors + 1] = json.ordered({
      id = r.id,
      name = rule_name(r),
      shortDescription = json.object({ text = r.message }),
      fullDescription = json.object({ text = r.reason }),
      help = json.object({ text = r.reason }),
      defaultConfiguration = json.object({ level = r.severity == "failure" and "error" or "warning" }),
      properties = json.object({
        tags = json.array({ "security", "cloudformation" }),
        resourceTypes = json.array({ table.unpack(r.types) }),
        cfnNagIds = json.array({ table.unpack(r.aliases or {}) }),
        source = r.source or "builtin",
      }),
    }, { "id", "name", "shortDescription", "fullDescription", "help", "defaultConfiguration", "properties" })
  end
  local out = json.array({})
  local artifacts, seen = json.array({}), {}
  local function add(v)
    local loc = json.object({ physicalLocation = json.object({ artifactLocation = json.object({ uri = uri(v.file) }) }),
      logicalLocations = json.array({ json.object({ name = v.resource, fullyQualifiedName = v.path,
        kind = v.type == "Parameter" and "parameter" or "resource" }) }) })
    if v.line then
      loc.physicalLocation.region = json.object({ startLine = v.line, startColumn = v.column })
    end
    if not seen[v.file] then
      seen[v.file] = true
      artifacts[#artifacts + 1] = json.object({ location = json.object({ uri = uri(v.file) }) })
    end
    local res = json.ordered({
      ruleId = v.rule,
      ruleIndex = index[v.rule],
      level = v.severity == "failure" and "error" or "warning",
      message = json.object({ text = v.message }),
      locations = json.array({ loc }),
      partialFingerprints = json.object({ ["lumuNag/v1"] = table.concat({ v.rule, v.file, v.path }, "|") }),
    }, { "ruleId", "ruleIndex", "level", "message", "locations" })
    if v.suppressed then
      res.suppressions = json.array({ json.object({ kind = "inSource", justification = v.suppressed.reason,
        properties = json.object({ source = v.suppressed.source }) }) })
    end
    out[#out + 1] = res
  end
  for _, v in ipairs(results.violations or {}) do add(v) end
  for _, v in ipairs(results.suppressed or {}) do add(v) end
  for _, f in ipairs(results.files or {}) do
    if not seen[f] then
      seen[f] = true
      artifacts[#artifacts + 1] = json.object({ location = json.object({ uri = uri(f) }) })
    end
  end
  local version = opts and opts.version
  if not version then
    local ok, v = pcall(require, "lumu.version")
    version = ok and v.version or "0"
  end
  local doc = json.ordered({
    ["$schema"] = "https://json.schemastore.org/sarif-2.1.0.json",
    version = "2.1.0",
    runs = json.array({ json.ordered({
      tool = json.object({ driver = json.ordered({
        name = "lumu-nag",
        fullName = "lumu nag: CloudFormation security checks",
        version = tostring(version),
        rules = descriptors,
      }, { "name", "fullName", "version", "rules" }) }),
      columnKind = "unicodeCodePoints",
      artifacts = artifacts,
      results = out,
    }, { "tool", "columnKind", "artifacts", "results" }) }),
  }, { "$schema", "version", "runs" })
  return json.encode(doc, { pretty = true })
end

return M
