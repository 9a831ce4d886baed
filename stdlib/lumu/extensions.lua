--- mu's extensions (mu.md §5.11) and Lua extensions, on stack descriptors.
--
-- local extensions = require "lumu.extensions"
--
-- extensions.load(model, opts) -> exts | nil, err, diag
--   Fetches (or finds in the cache), checks and reads every model.extensions
--   entry {url=, sha256=?, _where=, _path=}, in file order.  Entries without
--   a url (Docker `image` extensions, which mu never implemented) are skipped;
--   a url given twice is used once (as mu does), with a warning.
--   opts (all optional):
--     basedir   directory relative urls are resolved against (default
--               model.source.dir, else ".")
--     cache_dir cache root (default $LUMU_CACHE_DIR/extensions, else
--               $HOME/.lumu/extensions)
--     fetch     false: no network (http(s) and s3 urls must be in the
--               cache; local paths still work).  Default true.
--     s3_get    function(bucket, key, etag) -> body, etag | false (not
--               modified: the object's ETag is still `etag`) | nil, err.
--               Default: lumu.aws, loaded when first needed: S3 GetObject
--               with IfNoneMatch (HTTP 304 = not modified) in the configured
--               region (us-east-1 when none), retried once in the region a
--               wrong-region error names; when lumu.aws is missing, s3://
--               urls fail with "s3:// extensions need the AWS client".
--     http      module with lumu.http's request(opts) (tests); default lumu.http
--     getenv    default os.getenv
--     limits    {max_archive = 64 MiB (download or file), max_bytes = 64 MiB
--               (extracted), max_file_bytes, max_entries = 10000}
--   Sources (url):
--     * a directory: a relative path (against basedir), an absolute path or
--       file://PATH; used in place, never cached;
--     * a .zip, .tar.gz, .tgz (or .tar) archive: a path, file://PATH,
--       http(s)://... (redirects followed, https never downgraded) or
--       s3://bucket/key.  Archives are extracted with lumu._archive (no
--       absolute names, no "..", links never created: links to files inside
--       the archive become copies, links leaving it are an error; size and
--       entry limits) into <cache>/<sha256 hex of the url>/tree (local
--       archives: of "file://" .. absolute path), with meta.json next to it
--       {url, etag, sha256, size, fetched}.  A single top-level directory in
--       the archive is descended into (a "__MACOSX" folder is ignored).
--   Revalidation: http(s) and s3 send the cached ETag (If-None-Match); a 304
--   keeps the cache.  A local archive is re-extracted when its sha256
--   differs from the cached one.  When a download fails but a cached copy
--   exists, the copy is used with a warning.
--   sha256 pin: entry.sha256 (64 hex digits) must equal the sha256 of the
--   archive (downloaded, read, or recorded in the cache); otherwise load
--   fails naming the extension and both hashes, and nothing from the archive
--   is used or cached.  A pin on a directory is an error.
--   An extension directory holds (all optional):
--     mu-extension.yml   name (default: the url's last component), version,
--                        templateUpdateMode merge (default) | replace
--     <asset>.yml        a template file named after mu's asset (see
--                        extensions.ASSETS), looked up as cloudformation/<asset>
--                        first, then <asset>: merge mode deep-merges it into
--                        the stacks of that asset (lumu.gen.override.merge,
--                        mu's MapApply; a changed parameter Default also
--                        changes the value lumu passes); replace mode
--                        replaces their whole template (parameter values the
--                        new template does not declare are dropped, with a
--                        warning).  YAML short tags (!Ref, !Sub ...) are read
--                        as long forms.
--     init.lua (or extension.lua)  a Lua extension: the chunk is called with
--                        info = {name=, version=, dir=, url=} and returns a
--                        table of optional hooks:
--         on_template = function(descriptor, template) -> nil | table
--           every stack, after the extension's template files: edit the
--           template in place, or return a replacement table;
--         stacks = function(model, ctx) -> {descriptor, ...}
--           extra stacks (checked with lumu.gen.common.stack; ctx =
--           {namespace=, version=, extension=info, stacks=descriptors});
--         commands = { name = command module (a table with run) }
--           collected into exts.commands for the CLI.
--       Lua code in an archive from http(s):// or s3:// runs only when the
--       entry pins its sha256 (the error gives the archive's hash).
--   exts = { extensions = {ext, ...}, commands = {name = module},
--            warnings = {diag, ...} }
--     ext = {name=, version=, mode="merge"|"replace", url=, dir=, source=
--            "directory"|"file"|"http"|"s3", sha256=?, files = {asset = {path=,
--            template=}}, hooks = {...}?, hooks_file=?, entry=}
--   Failure: nil, "where: extensions[i]: message" (one line), diag.
--   diag = {severity=, where=, key=, message=} (lumu.gen.override.format).
--   Raises only on misuse (bad argument types).
--
-- extensions.apply(descriptors, exts, model) -> descriptors, diagnostics
--   `descriptors` is changed in place and returned:
--   1. the `stacks` hooks' descriptors are checked and appended to
--      `descriptors` (d.extension = the extension's name);
--   2. for every descriptor, for every extension in order: its template
--      files for the descriptor's assets (extensions.assets), then its
--      on_template hook; desc.extensions lists the names applied;
--   3. model's templates/parameters/tags overrides are applied to the
--      appended stacks (lumu.gen.override.apply).
--   A failing hook or merge is an error diagnostic naming the extension, the
--   hook and the file:line; other stacks are still processed.  exts == nil
--   (load failed) changes nothing.
--
-- extensions.assets(desc) -> {asset, ...}   mu's asset names for a descriptor
-- extensions.ASSETS  list of {asset=, stacks=} documenting the mapping
-- extensions.cache_root(opts) -> path | nil, err
local fs = require "lumu.fs"
local json = require "lumu.json"
local yaml = require "lumu.yaml"
local crypto = require "lumu.crypto"
local override = require "lumu.gen.override"

local M = {}

local MIB = 1024 * 1024
local DEFAULT_LIMITS = { max_archive = 64 * MIB, max_bytes = 64 * MIB, max_entries = 10000 }
local MAX_TEMPLATE = 4 * MIB

-- mu's asset name -> which lumu stacks it applies to (documentation and
-- the order in which assets are listed).
M.ASSETS = {
  { asset = "common-iam.yml", stacks = "<ns>-iam-common (kind iam, no environment or service)" },
  { asset = "env-iam.yml", stacks = "<ns>-iam-environment-<env> (kind iam, environment only)" },
  { asset = "vpc.yml", stacks = "<ns>-vpc-<env> (kind vpc)" },
  { asset = "vpc-target.yml", stacks = "<ns>-target-<env> (kind target)" },
  { asset = "elb.yml", stacks = "<ns>-loadbalancer-<env> (kind loadbalancer)" },
  { asset = "env-ecs.yml", stacks = "<ns>-environment-<env>, provider ecs or ecs-fargate" },
  { asset = "env-ec2.yml", stacks = "<ns>-environment-<env>, provider ec2" },
  { asset = "env-eks-bootstrap.yml", stacks = "<ns>-environment-<env>, provider eks or eks-fargate (lumu: one stack)" },
  { asset = "env-eks.yml", stacks = "<ns>-environment-<env>, provider eks or eks-fargate" },
  { asset = "repo.yml", stacks = "<ns>-repo-<svc> (kind repo)" },
  { asset = "app.yml", stacks = "<ns>-app-<svc> (kind app, ec2 provider)" },
  { asset = "bucket.yml", stacks = "<ns>-bucket-<purpose> (kind bucket: codedeploy, codepipeline, servicecatalog)" },
  { asset = "service-iam.yml", stacks = "<ns>-iam-service-<svc>-<env> (kind iam, service and environment)" },
  { asset = "service-ecs.yml", stacks = "<ns>-service-<svc>-<env>, provider ecs or ecs-fargate" },
  { asset = "service-ec2.yml", stacks = "<ns>-service-<svc>-<env>, provider ec2" },
  { asset = "schedule.yml", stacks = "<ns>-schedule-<svc>-<schedule>-<env> (kind schedule)" },
  { asset = "database.yml", stacks = "<ns>-database-<svc>-<env> (kind database)" },
  { asset = "dynamodb.yml", stacks = "<ns>-dynamodb-... (kind dynamodb; lumu only, mu has none)" },
  { asset = "pipeline-iam.yml", stacks = "<ns>-iam-pipeline-<svc> (kind iam, service only)" },
  { asset = "pipeline.yml", stacks = "<ns>-pipeline-<svc> (kind pipeline)" },
  { asset = "portfolio-iam.yml", stacks = "<ns>-iam-portfolio-common" },
  { asset = "portfolio.yml", stacks = "<ns>-portfolio-common (kind portfolio)" },
  { asset = "product.yml", stacks = "<ns>-product-<name> (kind product)" },
}
local KNOWN = {}
for _, a in ipairs(M.ASSETS) do KNOWN[a.asset] = true end

-- mu assets lumu does not generate: a file with one of these names is
-- reported and ignored.
local UNSUPPORTED = {
  ["artifact-pipeline.yml"] = "lumu builds the catalog product version templates itself",
  ["env-eks-fargate.yml"] = "mu has no such template",
  ["cluster.yml"] = "Kubernetes manifests are not generated by lumu",
  ["ingress.yml"] = "Kubernetes manifests are not generated by lumu",
  ["deployment.yml"] = "Kubernetes manifests are not generated by lumu",
}

-- ---------------------------------------------------------------------------
-- Descriptor -> assets
-- ---------------------------------------------------------------------------

local function provider_of(d)
  return (type(d.tags) == "table" and d.tags["mu:provider"]) or d.provider
end

--- assets(desc) -> list of mu asset names the descriptor's template answers to.
function M.assets(d)
  if type(d) ~= "table" then error("bad argument #1 to 'assets' (descriptor expected)", 2) end
  local k, p = d.kind, provider_of(d)
  if k == "iam" then
    if d.service and d.env then return { "service-iam.yml" } end
    if d.service then return { "pipeline-iam.yml" } end
    if d.env then return { "env-iam.yml" } end
    if type(d.name) == "string" and d.name:match("%-iam%-portfolio%-common$") then return { "portfolio-iam.yml" } end
    return { "common-iam.yml" }
  elseif k == "environment" then
    if p == "ec2" then return { "env-ec2.yml" } end
    if p == "eks" or p == "eks-fargate" then return { "env-eks-bootstrap.yml", "env-eks.yml" } end
    return { "env-ecs.yml" }
  elseif k == "service" then
    if p == "ec2" then return { "service-ec2.yml" } end
    if p == "eks" or p == "eks-fargate" then return {} end -- mu: Kubernetes deployment.yml
    return { "service-ecs.yml" }
  end
  local simple = {
    vpc = "vpc.yml", target = "vpc-target.yml", loadbalancer = "elb.yml", repo = "repo.yml", app = "app.yml",
    bucket = "bucket.yml", schedule = "schedule.yml", database = "database.yml", dynamodb = "dynamodb.yml",
    pipeline = "pipeline.yml", portfolio = "portfolio.yml", product = "product.yml",
  }
  return simple[k] and { simple[k] } or {}
end

-- ---------------------------------------------------------------------------
-- Small helpers
-- ---------------------------------------------------------------------------

local function diag(list, severity, where, key, message)
  local d = { severity = severity, where = where, key = key, message = message }
  list[#list + 1] = d
  return d
end

local function hex_sha256(s)
  return crypto.hex(crypto.sha256(s))
end

local function levenshtein(a, b)
  if math.abs(#a - #b) > 3 then return 99 end
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function did_you_mean(name)
  local best, bd = nil, 3
  for _, a in ipairs(M.ASSETS) do
    local d = levenshtein(name, a.asset)
    if d < bd then best, bd = a.asset, d end
  end
  return best
end

local function random_hex(n)
  return crypto.hex(crypto.random_bytes(n))
end

-- "a/b/" -> "a/b"; "" stays "".
local function trim_slash(p)
  local t = p:gsub("/+$", "")
  if t == "" and p ~= "" then return "/" end
  return t
end

local function resolve_path(basedir, p)
  if p:sub(1, 1) == "/" then return p end
  if basedir == "." or basedir == "" then return p end
  return fs.join(basedir, p)
end

local function url_unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function is_archive_name(p)
  local l = p:lower()
  return l:match("%.zip$") or l:match("%.tar%.gz$") or l:match("%.tgz$") or l:match("%.tar$")
end

local function last_component(url)
  local s = url:gsub("[?#].*$", ""):gsub("/+$", "")
  local base = s:match("([^/]+)$") or s
  base = base:gsub("%.tar%.gz$", ""):gsub("%.tgz$", ""):gsub("%.zip$", ""):gsub("%.tar$", "")
  return base
end

--- cache_root(opts) -> path | nil, err
function M.cache_root(opts)
  opts = opts or {}
  if opts.cache_dir then return trim_slash(opts.cache_dir) end
  local getenv = opts.getenv or os.getenv
  local c = getenv("LUMU_CACHE_DIR")
  if c and c ~= "" then return fs.join(c, "extensions") end
  local home = getenv("HOME")
  if not home or home == "" then
    return nil, "no cache directory for extensions: set HOME or LUMU_CACHE_DIR"
  end
  return fs.join(home, ".lumu", "extensions")
end

-- ---------------------------------------------------------------------------
-- The cache
-- ---------------------------------------------------------------------------

local function read_meta(dir)
  local text = fs.read(dir .. "/meta.json")
  if not text then return nil end
  local meta = json.decode(text)
  if type(meta) ~= "table" or type(meta.sha256) ~= "string" or not meta.sha256:match("^%x+$")
      or #meta.sha256 ~= 64 or not fs.isdir(dir .. "/tree") then
    return nil
  end
  if type(meta.etag) ~= "string" or meta.etag == "" or meta.etag:find("[%c]") then meta.etag = nil end
  return meta
end

-- Turns the links the archive listed into copies of the files they name.
local function materialise(tree, links, limits, bytes, warnings, label)
  local pending = links
  for _ = 1, 8 do
    local left, progress = {}, false
    for _, l in ipairs(pending) do
      local src, dst = tree .. "/" .. l.target, tree .. "/" .. l.path
      local st = fs.stat(src)
      if fs.stat(dst) then
        diag(warnings, "warning", nil, nil, label .. ": link " .. l.path .. " is also a file or directory; the link is ignored")
        progress = true
      elseif st and st.type == "file" then
        bytes = bytes + st.size
        if bytes > (limits.max_bytes or DEFAULT_LIMITS.max_bytes) then
          return nil, l.path .. ": archive expands beyond the size limit"
        end
        local data, err = fs.read(src)
        if not data then return nil, err end
        local parent = fs.dirname(dst)
        local ok, merr = fs.mkdir(parent)
        if not ok then return nil, merr end
        ok, err = fs.write(dst, data)
        if not ok then return nil, err end
        progress = true
      else
        left[#left + 1] = l
      end
    end
    pending = left
    if not progress or #pending == 0 then break end
  end
  for _, l in ipairs(pending) do
    diag(warnings, "warning", nil, nil, label .. ": link " .. l.path .. " -> " .. l.target
      .. " does not name a file of the archive; it is left out")
  end
  return true
end

-- Extracts data into <root>/<key>/tree atomically; returns the cache dir.
local function store(root, key, data, meta, limits, warnings, label)
  local ok, err = fs.mkdir(root, "700")
  if not ok then return nil, "cannot create the extension cache: " .. tostring(err) end
  local tmp = root .. "/.tmp-" .. random_hex(8)
  ok, err = fs.mkdir(tmp, "700")
  if not ok then return nil, err end
  local tree = tmp .. "/tree"
  ok, err = fs.mkdir(tree)
  if not ok then fs.rmtree(tmp); return nil, err end
  local archive_ok, archive = pcall(require, "lumu._archive")
  if not archive_ok then
    fs.rmtree(tmp)
    return nil, "archives need lumu._archive (libarchive), which this lumu lacks"
  end
  local info
  info, err = archive.extract(data, tree, {
    max_entries = limits.max_entries, max_bytes = limits.max_bytes, max_file_bytes = limits.max_file_bytes,
  })
  if info then
    ok, err = materialise(tree, info.links, limits, info.bytes, warnings, label)
    if not ok then info = nil end
  end
  if info then
    ok, err = fs.write(tmp .. "/meta.json", json.encode(meta, { pretty = true, sort_keys = true }) .. "\n")
    if not ok then info = nil end
  end
  if not info then
    fs.rmtree(tmp)
    return nil, err
  end
  local final = root .. "/" .. key
  local old
  if fs.exists(final) then
    old = root .. "/.old-" .. random_hex(8)
    local rok, rerr = os.rename(final, old)
    if not rok then fs.rmtree(tmp); return nil, rerr end
  end
  local rok, rerr = os.rename(tmp, final)
  if not rok then
    fs.rmtree(tmp)
    if old then os.rename(old, final) end
    return nil, rerr
  end
  if old then fs.rmtree(old) end
  return final
end

-- ---------------------------------------------------------------------------
-- Fetching
-- ---------------------------------------------------------------------------

local function resolve_location(base, loc)
  if loc:match("^%a[%w+.-]*://") then return loc end
  local scheme, host = base:match("^(%a[%w+.-]*)://([^/?#]+)")
  if loc:sub(1, 2) == "//" then return scheme .. ":" .. loc end
  if loc:sub(1, 1) == "/" then return scheme .. "://" .. host .. loc end
  local dir = base:gsub("[?#].*$", ""):match("^(.*/)") or (scheme .. "://" .. host .. "/")
  return dir .. loc
end

-- GET following up to 5 redirects; never from https to http.
local function http_get(hmod, url, headers, max_body)
  for hop = 0, 5 do
    if not url:match("^https?://[^/%s?#]+") or url:find("[%s%c]") then
      return nil, "not a valid http(s) URL: " .. url
    end
    local res, err = hmod.request({ url = url, headers = headers, max_body = max_body, timeout = 120 })
    if not res then return nil, tostring(err) end
    local loc = res.headers and res.headers.location
    if res.status >= 300 and res.status < 400 and res.status ~= 304 and loc then
      if hop == 5 then return nil, "too many redirects" end
      local nxt = resolve_location(url, loc)
      if url:match("^https:") and not nxt:match("^https:") then
        return nil, "refusing a redirect from https to " .. nxt
      end
      url = nxt
    else
      return res
    end
  end
end

-- The region S3 names in a wrong-region error, if any.
local function s3_region_hint(err)
  if type(err) ~= "table" then return nil end
  local data = type(err.data) == "table" and err.data or {}
  local r = data.Region or data.BucketRegion or err.region
  if type(r) == "string" and r:match("^[a-z0-9-]+$") then return r end
  local ep = data.Endpoint
  r = type(ep) == "string" and ep:match("s3[.-]([a-z]+%-[a-z]+%-%d+)%.amazonaws")
  return r or nil
end

-- s3_get through lumu.aws: GetObject with IfNoneMatch; a 304 is "not
-- modified"; a wrong-region error is retried once in the region S3 names.
local function default_s3_get(bucket, key, etag)
  local ok, aws = pcall(require, "lumu.aws")
  if not ok or type(aws) ~= "table" or (type(aws.client) ~= "function" and type(aws.s3_get) ~= "function") then
    local why = not ok and (": " .. tostring(aws):match("^[^\n]*")) or ""
    return nil, "s3:// extensions need the AWS client (lumu.aws), which is not available" .. why
  end
  if type(aws.s3_get) == "function" then return aws.s3_get(bucket, key, etag) end
  local region
  for _ = 1, 2 do
    local s3, err = aws.client("s3", region and { region = region } or nil)
    if not s3 and not region then
      region = "us-east-1" -- no region configured: S3 tells us the bucket's
      s3, err = aws.client("s3", { region = region })
    end
    if not s3 then return nil, tostring(err) end
    local res, gerr = s3:call("GetObject", { Bucket = bucket, Key = key, IfNoneMatch = etag })
    if res then
      if type(res.Body) ~= "string" then return nil, "GetObject returned no body" end
      return res.Body, res.ETag
    end
    if type(gerr) == "table" and gerr.status == 304 then return false end
    local hint = s3_region_hint(gerr)
    if not hint or hint == region or hint == s3.region then return nil, tostring(gerr) end
    region = hint
  end
  return nil, "S3 keeps redirecting s3://" .. bucket .. "/" .. key
end

local function pin_error(want, got, what)
  return "sha256 mismatch: the entry pins " .. want .. " but " .. what .. " has " .. got
    .. "; nothing from it is used"
end

-- A remote archive (http/https/s3) -> cache dir | nil, err.
local function fetch_remote(src, ctx, warnings, label)
  local root, rerr = ctx.cache()
  if not root then return nil, rerr end
  local key = hex_sha256(src.url)
  local dir = ctx.root .. "/" .. key
  local meta = read_meta(dir)
  local pin = src.pin
  local pin_ok = meta and (not pin or meta.sha256 == pin)
  if not ctx.fetch then
    if meta and pin_ok then return dir, meta end
    if meta then
      return nil, pin_error(pin, meta.sha256, "the cached copy (" .. dir .. ")") .. " (fetching is off)"
    end
    return nil, src.url .. " is not in the extension cache (" .. dir .. ") and fetching is off (offline)"
  end
  local etag = pin_ok and meta.etag or nil
  local body, newetag, err
  if src.kind == "s3" then
    local s3_get = ctx.s3_get or default_s3_get
    local ok
    ok, body, newetag = pcall(s3_get, src.bucket, src.key, etag)
    if not ok then
      if tostring(body):find("interrupted!", 1, true) then error(body, 0) end
      body, newetag = nil, body
    end
    if body == nil then err = tostring(newetag or "s3 download failed"); newetag = nil end
    if body == false and not etag then err = "s3 said not modified, but there is nothing cached" end
    if body ~= nil and body ~= false and type(body) ~= "string" then err = "s3_get returned a " .. type(body) end
  else
    local headers = etag and { ["If-None-Match"] = etag } or nil
    local res, herr = http_get(ctx.http, src.url, headers, ctx.limits.max_archive)
    if not res then
      err = herr
    elseif res.status == 304 then
      if etag then body = false else err = "HTTP 304 without a cached copy" end
    elseif res.status == 200 then
      body, newetag = res.body, res.headers.etag
    else
      err = "HTTP " .. res.status
    end
  end
  if err then
    if pin_ok then
      diag(warnings, "warning", nil, nil, label .. ": could not revalidate " .. src.url .. " (" .. err
        .. "); using the cached copy")
      return dir, meta
    end
    return nil, "cannot download " .. src.url .. ": " .. err
  end
  if body == false then return dir, meta end
  if #body > ctx.limits.max_archive then
    return nil, src.url .. ": archive larger than " .. ctx.limits.max_archive .. " bytes"
  end
  local sum = hex_sha256(body)
  if pin and sum ~= pin then return nil, pin_error(pin, sum, src.url) end
  if type(newetag) ~= "string" or newetag == "" or newetag:find("%c") then newetag = nil end
  local m = { url = src.url, etag = newetag, sha256 = sum, size = #body, fetched = os.time() }
  local cdir, serr = store(ctx.root, key, body, m, ctx.limits, warnings, label)
  if not cdir then return nil, src.url .. ": " .. serr end
  return cdir, m
end

-- A local archive file -> cache dir | nil, err.
local function fetch_file(src, ctx, warnings, label)
  local st = fs.stat(src.path, { follow = true })
  if st and st.size > ctx.limits.max_archive then
    return nil, src.path .. ": archive larger than " .. ctx.limits.max_archive .. " bytes"
  end
  local data, err = fs.read(src.path)
  if not data then return nil, err end
  local sum = hex_sha256(data)
  if src.pin and sum ~= src.pin then return nil, pin_error(src.pin, sum, src.path) end
  local root, rerr = ctx.cache()
  if not root then return nil, rerr end
  local id = "file://" .. fs.abspath(src.path)
  local key = hex_sha256(id)
  local dir = ctx.root .. "/" .. key
  local meta = read_meta(dir)
  if meta and meta.sha256 == sum then return dir, meta end
  local m = { url = id, sha256 = sum, size = #data, fetched = os.time() }
  local cdir, serr = store(ctx.root, key, data, m, ctx.limits, warnings, label)
  if not cdir then return nil, src.path .. ": " .. serr end
  return cdir, m
end

-- url -> source description | nil, err
local function classify(url, basedir)
  local scheme = url:match("^(%a[%w+.-]*)://")
  scheme = scheme and scheme:lower()
  if scheme == "http" or scheme == "https" then
    return { kind = "http", url = url }
  elseif scheme == "s3" then
    local bucket, key = url:match("^[sS]3://([^/]+)/(.+)$")
    if not bucket then return nil, "expected s3://BUCKET/KEY, got " .. url end
    return { kind = "s3", url = url, bucket = bucket, key = key }
  elseif scheme == "file" then
    local p = url_unescape(url:sub(8))
    if p:match("^localhost/") then p = p:sub(10) end
    if p == "" then return nil, "file:// URL without a path" end
    return { kind = "path", path = resolve_path(basedir, p) }
  elseif scheme then
    return nil, "unsupported scheme '" .. scheme .. "://' (use a path, file://, http(s):// or s3://)"
  end
  return { kind = "path", path = resolve_path(basedir, url) }
end

-- ---------------------------------------------------------------------------
-- Reading an extension directory
-- ---------------------------------------------------------------------------

local function load_yaml(path, positions)
  local st = fs.stat(path, { follow = true })
  if st and st.size > MAX_TEMPLATE then return nil, path .. ": larger than " .. MAX_TEMPLATE .. " bytes" end
  local text, err = fs.read(path)
  if not text then return nil, err end
  return yaml.load(text, { filename = path, positions = positions })
end

local MANIFEST_KEYS = { name = true, version = true, templateUpdateMode = true }

local function scalar_string(v)
  if type(v) == "string" then return v end
  if math.type(v) == "integer" then return string.format("%d", v) end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return nil
end

-- Loads a Lua extension file: returns hooks table | nil, err
local function load_lua(path, info)
  local chunk, err = loadfile(path, "t")
  if not chunk then return nil, err end
  local ok, hooks = xpcall(chunk, debug.traceback, info)
  if not ok then return nil, (tostring(hooks):match("^[^\n]*")) end
  if type(hooks) ~= "table" then
    return nil, path .. ": must return a table of hooks (on_template, stacks, commands), got " .. type(hooks)
  end
  for k, v in pairs(hooks) do
    if k == "on_template" or k == "stacks" then
      if type(v) ~= "function" then return nil, path .. ": " .. k .. " must be a function, got " .. type(v) end
    elseif k == "commands" then
      if type(v) ~= "table" then return nil, path .. ": commands must be a table {name = module}" end
      for name, mod in pairs(v) do
        if type(name) ~= "string" or not name:match("^%a[%w%-]*$") then
          return nil, path .. ": commands: invalid command name " .. tostring(name)
        end
        if type(mod) ~= "table" or type(mod.run) ~= "function" then
          return nil, path .. ": commands." .. name .. ": expected a command module (a table with run)"
        end
      end
    elseif k ~= "name" and k ~= "version" then
      return nil, path .. ": unknown hook '" .. tostring(k) .. "' (hooks: on_template, stacks, commands)"
    end
  end
  return hooks
end

local function read_extension(ext, warnings, label, trusted_code, archive_sha256)
  local dir = ext.dir
  -- manifest
  local mpath = dir .. "/mu-extension.yml"
  if fs.isfile(mpath) then
    local doc, pos = load_yaml(mpath, true)
    if doc == nil then return nil, pos end
    if doc ~= json.null then
      if json.kind(doc) ~= "object" then return nil, mpath .. ": expected a mapping" end
      local keys = pos and pos[doc] and pos[doc].keys or {}
      local function at(k)
        local kp = keys[k]
        return kp and (mpath .. ":" .. kp.line .. ":" .. kp.col) or mpath
      end
      for k in pairs(doc) do
        if not MANIFEST_KEYS[k] then
          diag(warnings, "warning", at(k), nil, label .. ": unknown key '" .. tostring(k)
            .. "' in mu-extension.yml (keys: name, version, templateUpdateMode)")
        end
      end
      if doc.name ~= nil and doc.name ~= json.null then
        local n = scalar_string(doc.name)
        if not n or n == "" then return nil, at("name") .. ": name must be a string" end
        ext.name = n
      end
      if doc.version ~= nil and doc.version ~= json.null then
        ext.version = scalar_string(doc.version)
        if not ext.version then return nil, at("version") .. ": version must be a string" end
      end
      local mode = doc.templateUpdateMode
      if mode ~= nil and mode ~= json.null then
        local m = type(mode) == "string" and mode:lower()
        if m ~= "merge" and m ~= "replace" then
          return nil, at("templateUpdateMode") .. ": templateUpdateMode must be merge or replace, got "
            .. tostring(mode)
        end
        ext.mode = m
      end
    end
  end
  -- template files
  for _, a in ipairs(M.ASSETS) do
    local full, bare = dir .. "/cloudformation/" .. a.asset, dir .. "/" .. a.asset
    local path = fs.isfile(full) and full or (fs.isfile(bare) and bare or nil)
    if path == full and fs.isfile(bare) then
      diag(warnings, "warning", nil, nil, label .. ": both cloudformation/" .. a.asset .. " and " .. a.asset
        .. " exist; using cloudformation/" .. a.asset)
    end
    if path then
      local tpl, err = load_yaml(path)
      if tpl == nil then return nil, err end
      if json.kind(tpl) ~= "object" then
        return nil, path .. ": expected a template " .. (ext.mode == "replace" and "" or "fragment ") .. "(a mapping)"
      end
      if ext.mode == "replace" and json.kind(tpl.Resources) ~= "object" then
        return nil, path .. ": templateUpdateMode is replace, so this must be a whole template with Resources"
      end
      ext.files[a.asset] = { path = path, template = tpl }
    end
  end
  -- names lumu ignores, and likely typos
  for _, sub in ipairs({ "", "cloudformation/", "kubernetes/" }) do
    for _, n in ipairs(fs.isdir(dir .. "/" .. sub) and (fs.list(dir .. "/" .. sub) or {}) or {}) do
      local rel = sub .. n
      if sub == "kubernetes/" then
        diag(warnings, "warning", nil, nil, label .. ": " .. rel .. " ignored (Kubernetes manifests are not "
          .. "generated by lumu)")
      elseif UNSUPPORTED[n] then
        diag(warnings, "warning", nil, nil, label .. ": " .. rel .. " ignored (" .. UNSUPPORTED[n] .. ")")
      elseif not KNOWN[n] and n ~= "mu-extension.yml" and (n:match("%.ya?ml$") or n:match("%.json$")) then
        local guess = did_you_mean(n:gsub("%.yaml$", ".yml"):gsub("%.json$", ".yml"))
        if guess then
          diag(warnings, "warning", nil, nil, label .. ": " .. rel .. " is not a template name lumu knows; did you mean "
            .. guess .. "?")
        end
      end
    end
  end
  -- Lua
  local lpath
  for _, n in ipairs({ "init.lua", "extension.lua" }) do
    if fs.isfile(dir .. "/" .. n) then
      if lpath then
        diag(warnings, "warning", nil, nil, label .. ": both init.lua and extension.lua exist; using init.lua")
      else
        lpath = dir .. "/" .. n
      end
    end
  end
  if lpath then
    if not trusted_code then
      return nil, "holds Lua code (" .. fs.basename(lpath) .. ") but comes from " .. ext.url
        .. " without a sha256 pin; pin it (sha256: " .. tostring(archive_sha256) .. ") to run it"
    end
    local hooks, err = load_lua(lpath, { name = ext.name, version = ext.version, dir = dir, url = ext.url })
    if not hooks then return nil, err end
    ext.hooks, ext.hooks_file = hooks, lpath
  end
  if not lpath and next(ext.files) == nil then
    diag(warnings, "warning", nil, nil, label .. ": has no template file lumu knows and no init.lua, so it "
      .. "changes nothing")
  end
  return ext
end

-- The directory an archive's content starts at (mu descends into a single
-- top-level directory).
local function archive_root(tree)
  local names = {}
  for _, n in ipairs(fs.list(tree) or {}) do
    if n ~= "__MACOSX" then names[#names + 1] = n end
  end
  if #names == 1 and fs.isdir(tree .. "/" .. names[1]) then return tree .. "/" .. names[1] end
  return tree
end

-- ---------------------------------------------------------------------------
-- load
-- ---------------------------------------------------------------------------

local function load_one(entry, ctx, warnings, label)
  local url = entry.url
  local pin = entry.sha256
  if pin ~= nil then
    if type(pin) ~= "string" or not pin:match("^%x+$") or #pin ~= 64 then
      return nil, "sha256 must be 64 hexadecimal digits, got " .. tostring(pin)
    end
    pin = pin:lower()
  end
  local src, err = classify(url, ctx.basedir)
  if not src then return nil, err end
  src.pin = pin
  local ext = { url = url, entry = entry, mode = "merge", files = {}, sha256 = pin, name = last_component(url) }
  local dir, meta
  if src.kind == "path" then
    if fs.isdir(src.path) then
      if pin then return nil, "sha256 pins an archive, but " .. src.path .. " is a directory" end
      ext.source, dir = "directory", trim_slash(src.path)
    elseif fs.isfile(src.path) then
      if not is_archive_name(src.path) then
        return nil, src.path .. " is neither a directory nor a .zip, .tar.gz or .tgz archive"
      end
      ext.source = "file"
      local cdir
      cdir, meta = fetch_file(src, ctx, warnings, label)
      if not cdir then return nil, meta end
      dir = archive_root(cdir .. "/tree")
    else
      return nil, src.path .. ": no such file or directory"
    end
  else
    ext.source = src.kind
    local cdir
    cdir, meta = fetch_remote(src, ctx, warnings, label)
    if not cdir then return nil, meta end
    dir = archive_root(cdir .. "/tree")
  end
  ext.dir = dir
  ext.archive_sha256 = meta and meta.sha256
  local trusted = src.kind == "path" or pin ~= nil
  local ok, rerr = read_extension(ext, warnings, label, trusted, ext.archive_sha256)
  if not ok then return nil, rerr end
  return ext
end

--- load(model, opts) -> exts | nil, err, diag
function M.load(model, opts)
  if type(model) ~= "table" then error("bad argument #1 to 'load' (model table expected)", 2) end
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #2 to 'load' (table expected)", 2) end
  opts = opts or {}
  if opts.s3_get ~= nil and type(opts.s3_get) ~= "function" then
    error("bad argument #2 to 'load' (s3_get must be a function)", 2)
  end
  local result = { extensions = {}, commands = {}, warnings = {} }
  local list = model.extensions or {}
  if #list == 0 then return result end
  local limits = {}
  for k, v in pairs(DEFAULT_LIMITS) do limits[k] = v end
  for k, v in pairs(opts.limits or {}) do limits[k] = v end
  local ctx = {
    basedir = opts.basedir or (model.source and model.source.dir) or ".",
    fetch = opts.fetch ~= false, s3_get = opts.s3_get, limits = limits,
    http = opts.http or require("lumu.http"),
  }
  -- the cache is needed only for archives
  function ctx.cache()
    if not ctx.root then
      local root, err = M.cache_root(opts)
      if not root then return nil, err end
      ctx.root = root
    end
    return ctx.root
  end
  local seen, cmd_owner = {}, {}
  for i, entry in ipairs(list) do
    local key = entry._path or ("extensions[" .. i .. "]")
    local function fail(msg)
      local d = { severity = "error", where = entry._where, key = key, message = msg }
      return nil, override.format(d), d
    end
    if type(entry) ~= "table" then return fail("expected a table {url=}") end
    if entry.url ~= nil then
      if type(entry.url) ~= "string" or entry.url == "" then return fail("url must be a non-empty string") end
      if seen[entry.url] then
        diag(result.warnings, "warning", entry._where, key, "same url as " .. seen[entry.url] .. ", skipped")
      else
        seen[entry.url] = key
        local label = "extension " .. entry.url
        local nwarn = #result.warnings
        local ext, err = load_one(entry, ctx, result.warnings, label)
        if not ext then
          return fail("extension " .. entry.url .. ": " .. tostring(err))
        end
        for j = nwarn + 1, #result.warnings do
          local w = result.warnings[j]
          w.where, w.key = w.where or entry._where, w.key or key
        end
        for name, mod in pairs(ext.hooks and ext.hooks.commands or {}) do
          if cmd_owner[name] then
            return fail("extension '" .. ext.name .. "': command '" .. name .. "' is also defined by extension '"
              .. cmd_owner[name] .. "'")
          end
          cmd_owner[name] = ext.name
          result.commands[name] = mod
        end
        result.extensions[#result.extensions + 1] = ext
      end
    end
  end
  return result
end

-- ---------------------------------------------------------------------------
-- apply
-- ---------------------------------------------------------------------------

local function where_of(fn)
  local info = debug.getinfo(fn, "S")
  local src = info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src
  return src .. ":" .. info.linedefined
end

-- Calls ext's hook; true, results... | false, message
local function call_hook(ext, name, stackname, ...)
  local fn = ext.hooks[name]
  local function handler(e)
    local msg = tostring(e)
    if type(e) == "table" and getmetatable(e) == nil then msg = "(error object is a table value)" end
    local at
    for level = 2, 60 do
      local i = debug.getinfo(level, "Sl")
      if not i then break end
      if i.source:sub(1, 1) == "@" and i.currentline > 0 and i.source:sub(2, #ext.dir + 2) == ext.dir .. "/" then
        at = i.source:sub(2) .. ":" .. i.currentline
        break
      end
    end
    if at and not msg:find(at, 1, true) then msg = msg .. " (at " .. at .. ")" end
    return msg
  end
  local res = table.pack(xpcall(fn, handler, ...))
  if not res[1] then
    return false, "extension '" .. ext.name .. "': " .. name .. " (" .. where_of(fn) .. ") failed"
      .. (stackname and (" on stack " .. stackname) or "") .. ": " .. tostring(res[2])
  end
  return table.unpack(res, 1, res.n)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

local function param_string(d)
  if type(d) == "boolean" then return tostring(d) end
  if math.type(d) == "integer" then return string.format("%d", d) end
  if type(d) == "number" then return tostring(d) end
  return d
end

local function apply_file(desc, ext, asset, file, diags)
  local where = ext.entry._where
  local key = ext.entry._path
  if ext.mode == "replace" then
    local tpl = override.merge(nil, file.template)
    desc.template = tpl
    local declared = type(tpl.Parameters) == "table" and tpl.Parameters or {}
    local dropped = {}
    for _, k in ipairs(sorted_keys(desc.parameters or {})) do
      if declared[k] == nil then
        dropped[#dropped + 1] = k
        desc.parameters[k] = nil
      end
    end
    if #dropped > 0 then
      diag(diags, "warning", where, key, "extension '" .. ext.name .. "' replaces the template of stack " .. desc.name
        .. " with " .. file.path .. ", which does not declare " .. table.concat(dropped, ", ")
        .. ": lumu no longer passes them")
    end
    return true
  end
  local tpl = desc.template
  local before = {}
  for name, p in pairs(type(tpl.Parameters) == "table" and tpl.Parameters or {}) do
    if type(p) == "table" then before[name] = p.Default end
  end
  local _, err = override.merge(tpl, file.template, "")
  if err then
    diag(diags, "error", where, key, "extension '" .. ext.name .. "': " .. file.path .. " on stack " .. desc.name
      .. ": " .. err)
    return false
  end
  for _, name in ipairs(sorted_keys(type(tpl.Parameters) == "table" and tpl.Parameters or {})) do
    local p = tpl.Parameters[name]
    if type(p) == "table" and p.Default ~= before[name] and p.Default ~= nil and type(p.Default) ~= "table"
        and desc.parameters and desc.parameters[name] ~= nil then
      desc.parameters[name] = param_string(p.Default)
    end
  end
  return true
end

local function add_stacks(descriptors, exts, model, diags)
  local added = {}
  local names = {}
  for _, d in ipairs(descriptors) do names[d.name] = true end
  local version = require("lumu.version").version
  for _, ext in ipairs(exts.extensions) do
    if ext.hooks and ext.hooks.stacks then
      local ctx = {
        namespace = model.namespace or "mu", version = version, stacks = descriptors,
        extension = { name = ext.name, version = ext.version, dir = ext.dir, url = ext.url },
      }
      local ok, list = call_hook(ext, "stacks", nil, model, ctx)
      local fname = where_of(ext.hooks.stacks)
      if not ok then
        diag(diags, "error", ext.entry._where, ext.entry._path, list)
      elseif list ~= nil and type(list) ~= "table" then
        diag(diags, "error", ext.entry._where, ext.entry._path, "extension '" .. ext.name .. "': stacks (" .. fname
          .. ") must return a list of stack descriptors, got " .. type(list))
      else
        for i, d in ipairs(list or {}) do
          local good, err = pcall(require("lumu.gen.common").stack, d)
          if good and names[d.name] then good, err = false, "a stack named " .. d.name .. " already exists" end
          if good and d.template.Resources == nil then good, err = false, "template has no Resources" end
          if not good then
            err = tostring(err):gsub("^[^:]*:%d+: ", "")
            diag(diags, "error", ext.entry._where, ext.entry._path, "extension '" .. ext.name .. "': stacks ("
              .. fname .. ") returned a bad descriptor #" .. i .. ": " .. err)
          else
            names[d.name] = true
            d.extension = ext.name
            descriptors[#descriptors + 1] = d
            added[#added + 1] = d
          end
        end
      end
    end
  end
  return added
end

--- apply(descriptors, exts, model) -> descriptors, diagnostics
function M.apply(descriptors, exts, model)
  if type(descriptors) ~= "table" then error("bad argument #1 to 'apply' (list of descriptors expected)", 2) end
  if exts ~= nil and type(exts) ~= "table" then error("bad argument #2 to 'apply' (extensions expected)", 2) end
  if type(model) ~= "table" then error("bad argument #3 to 'apply' (model table expected)", 2) end
  local diags = {}
  if not exts or #(exts.extensions or {}) == 0 then return descriptors, diags end
  local added = add_stacks(descriptors, exts, model, diags)
  for _, d in ipairs(descriptors) do
    if type(d.template) == "table" then
      local assets = M.assets(d)
      for _, ext in ipairs(exts.extensions) do
        local used = false
        for _, a in ipairs(assets) do
          local file = ext.files[a]
          if file and apply_file(d, ext, a, file, diags) then used = true end
        end
        if ext.hooks and ext.hooks.on_template then
          local ok, res = call_hook(ext, "on_template", d.name, d, d.template)
          if not ok then
            diag(diags, "error", ext.entry._where, ext.entry._path, res)
          elseif res ~= nil and type(res) ~= "table" then
            diag(diags, "error", ext.entry._where, ext.entry._path, "extension '" .. ext.name .. "': on_template ("
              .. where_of(ext.hooks.on_template) .. ") returned a " .. type(res) .. " for stack " .. d.name
              .. " (return nothing, or a template table)")
          else
            if res ~= nil then d.template = res end
            used = true
          end
        end
        if used then
          d.extensions = d.extensions or {}
          d.extensions[#d.extensions + 1] = ext.name
        end
      end
    end
  end
  for _, d in ipairs(added) do
    for _, x in ipairs(override.apply(d, model)) do diags[#diags + 1] = x end
  end
  return descriptors, diags
end

return M
