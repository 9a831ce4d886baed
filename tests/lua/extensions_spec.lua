-- Specs of lumu.extensions (mu's extensions and Lua extensions) and of its C
-- core lumu._archive.  Network: only tests/fixtures/extensions/serve.py on
-- 127.0.0.1; the seed's GitHub URL goes through an injected http client.
local ext = require "lumu.extensions"
local archive = require "lumu._archive"
local fs = require "lumu.fs"
local json = require "lumu.json"
local config = require "lumu.config"
local synth = require "lumu.synth"
local crypto = require "lumu.crypto"
local http = require "lumu.http"
local cfn = require "lumu.cfn"

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local FIX = HERE .. "/../fixtures/extensions"
local SHARED = os.getenv("LUMU_SHARED") or (HERE .. "/../../../shared")
local SEED = SHARED .. "/corpus/seed-examples/extensions/mu.yml"
local MU_EXAMPLE = SHARED .. "/corpus/mu-examples/extension/mu.yml"
local GITHUB = "https://github.com/stelligent/mu-cfn_nag/archive/v0.2.zip"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function mkarchive(kind, out, dir, prefix)
  local cmd = "python3 " .. q(FIX .. "/mkarchive.py") .. " " .. kind .. " " .. q(out)
  if dir then cmd = cmd .. " " .. q(dir) end
  if prefix then cmd = cmd .. " " .. q(prefix) end
  assert(os.execute(cmd), cmd)
  return out
end

local function write(path, text)
  assert(fs.mkdir(fs.dirname(path)))
  assert(fs.write(path, text))
  return path
end

local function sha(s) return crypto.hex(crypto.sha256(s)) end

local function entry(url, i, extra)
  local e = { url = url, _where = "mu.yml:" .. (10 + (i or 1)) .. ":5", _path = "extensions[" .. (i or 1) .. "]" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function model(...)
  local m = assert(config.load(FIX .. "/model.yml"))
  m.extensions = { ... }
  return m
end

-- The model's stacks, generated without its extensions.
local function plan(m)
  local saved = m.extensions
  m.extensions = nil
  local stacks = synth.plan(m)
  m.extensions = saved
  return stacks
end

local function by_name(stacks, name)
  for _, d in ipairs(stacks) do
    if d.name == name then return d end
  end
end

local function messages(list)
  local out = {}
  for _, d in ipairs(list or {}) do out[#out + 1] = synth.format_diag(d) end
  return table.concat(out, "\n")
end

local tmp, cache

-- load + plan + apply; opts.cache_dir defaults to this test's cache.
local function run(m, opts)
  opts = opts or {}
  opts.cache_dir = opts.cache_dir or cache
  opts.basedir = opts.basedir or tmp
  local exts, err = ext.load(m, opts)
  assert(exts, err)
  local stacks = plan(m)
  local out, diags = ext.apply(stacks, exts, m)
  assert.are.equal(stacks, out)
  return exts, stacks, diags
end

local function load_err(m, opts)
  opts = opts or {}
  opts.cache_dir = opts.cache_dir or cache
  opts.basedir = opts.basedir or tmp
  local exts, err, d = ext.load(m, opts)
  assert.is_nil(exts)
  assert.are.equal("string", type(err))
  assert.are.equal("error", d.severity)
  return err
end

-- a copy of a fixture folder in tmp
local function copy_fixture(name, dest)
  dest = dest or (tmp .. "/" .. name)
  for path, kind in fs.walk(FIX .. "/" .. name) do
    local rel = path:sub(#FIX + #name + 3)
    if kind == "directory" then
      assert(fs.mkdir(dest .. "/" .. rel))
    else
      write(dest .. "/" .. rel, assert(fs.read(path)))
    end
  end
  return dest
end

before_each(function()
  tmp = assert(fs.tmpdir("lumu-ext-spec-"))
  cache = tmp .. "/cache"
end)

after_each(function()
  if tmp then fs.rmtree(tmp) end
end)

-- ---------------------------------------------------------------------------
describe("extensions.assets", function()
  it("maps environment stacks by provider", function()
    assert.are.same({ "env-ecs.yml" }, ext.assets({ kind = "environment", tags = { ["mu:provider"] = "ecs" } }))
    assert.are.same({ "env-ecs.yml" }, ext.assets({ kind = "environment", tags = { ["mu:provider"] = "ecs-fargate" } }))
    assert.are.same({ "env-ec2.yml" }, ext.assets({ kind = "environment", tags = { ["mu:provider"] = "ec2" } }))
    assert.are.same({ "env-eks-bootstrap.yml", "env-eks.yml" },
      ext.assets({ kind = "environment", tags = { ["mu:provider"] = "eks" } }))
  end)

  it("tells the IAM stacks apart", function()
    assert.are.same({ "common-iam.yml" }, ext.assets({ kind = "iam", name = "mu-iam-common" }))
    assert.are.same({ "env-iam.yml" }, ext.assets({ kind = "iam", env = "a" }))
    assert.are.same({ "service-iam.yml" }, ext.assets({ kind = "iam", env = "a", service = "s" }))
    assert.are.same({ "pipeline-iam.yml" }, ext.assets({ kind = "iam", service = "s" }))
    assert.are.same({ "portfolio-iam.yml" }, ext.assets({ kind = "iam", name = "mu-iam-portfolio-common" }))
  end)

  it("maps services, the simple kinds, and nothing for unknown kinds", function()
    assert.are.same({ "service-ecs.yml" }, ext.assets({ kind = "service", tags = { ["mu:provider"] = "ecs" } }))
    assert.are.same({ "service-ec2.yml" }, ext.assets({ kind = "service", tags = { ["mu:provider"] = "ec2" } }))
    assert.are.same({}, ext.assets({ kind = "service", tags = { ["mu:provider"] = "eks" } }))
    for kind, asset in pairs({ vpc = "vpc.yml", target = "vpc-target.yml", loadbalancer = "elb.yml",
      database = "database.yml", pipeline = "pipeline.yml", schedule = "schedule.yml", bucket = "bucket.yml",
      repo = "repo.yml", app = "app.yml", dynamodb = "dynamodb.yml", product = "product.yml" }) do
      assert.are.same({ asset }, ext.assets({ kind = kind }))
    end
    assert.are.same({}, ext.assets({ kind = "alerts" }))
    assert.has_error(function() ext.assets(nil) end)
  end)

  it("documents every asset it answers to", function()
    local listed = {}
    for _, a in ipairs(ext.ASSETS) do listed[a.asset] = true end
    for _, d in ipairs(plan(model())) do
      for _, a in ipairs(ext.assets(d)) do assert.is_true(listed[a], a) end
    end
  end)
end)

-- ---------------------------------------------------------------------------
describe("local folders", function()
  it("applies mu's extension example (bucket + security-group) to the ECS environment stack only", function()
    local m = assert(config.load(MU_EXAMPLE))
    local exts, err = ext.load(m, { cache_dir = cache, fetch = false })
    assert.is_truthy(exts, err)
    assert.are.same({ "bucket", "security-group" }, { exts.extensions[1].name, exts.extensions[2].name })
    assert.are.equal("2.0", exts.extensions[2].version)
    assert.are.equal("merge", exts.extensions[1].mode)
    local stacks = plan(m)
    local _, diags = ext.apply(stacks, exts, m)
    assert.are.equal("", messages(diags))
    for _, d in ipairs(stacks) do
      local res = d.template.Resources
      if d.name == "mu-environment-acceptance" then
        assert.are.same({ "bucket", "security-group" }, d.extensions)
        assert.are.same({ Type = "AWS::S3::Bucket" }, res.ExtraBucket)
        local sg = res.ExtraSG.Properties
        assert.are.same({ ["Fn::ImportValue"] = { ["Fn::Sub"] = "${VpcId}" } }, sg.VpcId)
        assert.are.same({ Ref = "SshAllow" }, sg.SecurityGroupIngress[1].CidrIp)
        assert.are.same({}, cfn.check(d.template))
      else
        assert.is_nil(res.ExtraBucket, d.name)
        assert.is_nil(res.ExtraSG, d.name)
        assert.is_nil(d.extensions, d.name)
      end
    end
    assert.is_nil(fs.stat(cache), "folders are not cached")
  end)

  it("is applied by lumu synth's plan", function()
    local m = assert(config.load(MU_EXAMPLE))
    local stacks = synth.plan(m, { cache_dir = cache })
    local env = by_name(stacks, "mu-environment-acceptance")
    assert.is_truthy(env.template.Resources.ExtraBucket)
    assert.is_truthy(env.template.Resources.ExtraSG)
  end)

  it("merges the seed's application folder into ECS service and common IAM stacks", function()
    local m = model(entry("application"))
    local exts, stacks, diags = run(m, { basedir = FIX .. "/seed" })
    assert.are.equal("", messages(diags) .. messages(exts.warnings))
    local svc = by_name(stacks, "mu-service-web-acceptance")
    assert.are.equal("AWS::CloudWatch::Alarm", svc.template.Resources.ApplicationCpuAlarm.Type)
    assert.are.same({ ["Fn::Sub"] = "CPU of ${AWS::StackName}" },
      svc.template.Resources.ApplicationCpuAlarm.Properties.AlarmDescription)
    assert.is_nil(by_name(stacks, "mu-service-web-production").template.Resources.ApplicationCpuAlarm)
    assert.are.same({ Value = "application 1.0" }, by_name(stacks, "mu-iam-common").template.Outputs.ApplicationExtension)
  end)

  it("replaces whole templates in replace mode and drops parameter values the new one lacks", function()
    local m = model(entry("replace-vpc"))
    local exts, stacks, diags = run(m, { basedir = FIX })
    assert.are.equal("replace", exts.extensions[1].mode)
    for _, name in ipairs({ "mu-vpc-acceptance", "mu-vpc-production" }) do
      local vpc = by_name(stacks, name)
      assert.are.equal("a VPC of our own", vpc.template.Description)
      assert.are.same({ "VPC" }, (function()
        local k = {}
        for id in pairs(vpc.template.Resources) do k[#k + 1] = id end
        return k
      end)())
      assert.are.same({}, vpc.parameters)
    end
    assert.are.equal(2, #diags)
    assert.matches("replaces the template of stack mu-vpc-acceptance", messages(diags), 1, true)
    assert.matches("ElbInternal, EnvironmentName, InstanceTenancy, Namespace", messages(diags), 1, true)
    -- the two stacks got copies, not one shared table
    assert.are_not.equal(by_name(stacks, "mu-vpc-acceptance").template, by_name(stacks, "mu-vpc-production").template)
    assert.is_nil(by_name(stacks, "mu-loadbalancer-acceptance").extensions)
  end)

  it("merges parameter defaults into the values lumu passes, and honours Fn::Replace", function()
    local dir = tmp .. "/params"
    write(dir .. "/vpc.yml", [[
Parameters:
  InstanceTenancy:
    Default: dedicated
Resources:
  VPC:
    Properties:
      Tags:
        Fn::Replace:
          - Key: Owner
            Value: ext
]])
    local _, stacks, diags = run(model(entry("params")))
    assert.are.equal("", messages(diags))
    local vpc = by_name(stacks, "mu-vpc-acceptance")
    assert.are.equal("dedicated", vpc.parameters.InstanceTenancy)
    assert.are.same({ { Key = "Owner", Value = "ext" } }, vpc.template.Resources.VPC.Properties.Tags)
  end)

  it("reports a bad Fn::Splice as an error naming the extension and the file", function()
    write(tmp .. "/splice/mu-extension.yml", "name: splicer\n")
    write(tmp .. "/splice/vpc.yml", "Resources:\n  VPC:\n    Properties:\n      Tags:\n        Fn::Splice: [x]\n")
    local _, _, diags = run(model(entry("splice", 3)))
    local text = messages(diags)
    assert.matches("mu.yml:13:5: extensions[3]: extension 'splicer': ", text, 1, true)
    assert.matches("splice/vpc.yml on stack mu-vpc-acceptance", text, 1, true)
    assert.matches("Fn::Splice needs", text, 1, true)
    assert.are.equal("error", diags[1].severity)
  end)

  it("prefers cloudformation/<asset> over <asset>, as mu does", function()
    write(tmp .. "/both/cloudformation/repo.yml", "Outputs:\n  Which:\n    Value: full\n")
    write(tmp .. "/both/repo.yml", "Outputs:\n  Which:\n    Value: bare\n")
    local exts, stacks = run(model(entry("both")))
    assert.are.equal("full", by_name(stacks, "mu-repo-web").template.Outputs.Which.Value)
    assert.matches("using cloudformation/repo.yml", messages(exts.warnings), 1, true)
  end)

  it("resolves relative paths against basedir, and takes file:// and absolute paths", function()
    copy_fixture("replace-vpc", tmp .. "/sub/rv")
    local exts = run(model(entry("sub/rv")))
    assert.are.equal(tmp .. "/sub/rv", exts.extensions[1].dir)
    exts = run(model(entry("file://" .. tmp .. "/sub/rv")), { basedir = "/nonexistent" })
    assert.are.equal("directory", exts.extensions[1].source)
    exts = run(model(entry(tmp .. "/sub/rv/")), { basedir = "/nonexistent" })
    assert.are.equal("replace-vpc", exts.extensions[1].name)
  end)

  it("fails clearly on a missing folder", function()
    local err = load_err(model(entry("nope", 2)))
    assert.matches("^mu%.yml:12:5: extensions%[2%]: extension nope: .*/nope: no such file or directory$", err)
  end)

  it("rejects a bad templateUpdateMode with its file:line:col", function()
    write(tmp .. "/badmode/mu-extension.yml", "name: x\ntemplateUpdateMode: rewrite\n")
    local err = load_err(model(entry("badmode")))
    assert.matches("badmode/mu-extension.yml:2:1: templateUpdateMode must be merge or replace, got rewrite", err, 1, true)
  end)

  it("reports YAML errors in template files with their position", function()
    write(tmp .. "/badyaml/vpc.yml", "Resources:\n  X: [1, 2\n")
    local err = load_err(model(entry("badyaml")))
    assert.matches("badyaml/vpc.yml:%d+:%d+:", err)
  end)

  it("needs whole templates in replace mode, and mappings in merge mode", function()
    write(tmp .. "/partial/mu-extension.yml", "templateUpdateMode: replace\n")
    write(tmp .. "/partial/vpc.yml", "Outputs: {}\n")
    assert.matches("must be a whole template with Resources", load_err(model(entry("partial"))), 1, true)
    write(tmp .. "/list/vpc.yml", "- 1\n- 2\n")
    assert.matches("list/vpc.yml: expected a template fragment", load_err(model(entry("list"))), 1, true)
  end)

  it("warns about unknown manifest keys, likely typos, Kubernetes files and empty extensions", function()
    write(tmp .. "/odd/mu-extension.yml", "name: odd\ncolour: blue\n")
    write(tmp .. "/odd/env-ecs.yaml", "Resources: {}\n")
    write(tmp .. "/odd/kubernetes/ingress.yml", "kind: Ingress\n")
    write(tmp .. "/odd/ingress.yml", "kind: Ingress\n")
    local exts = run(model(entry("odd")))
    local text = messages(exts.warnings)
    assert.matches("odd/mu-extension.yml:2:1: extensions[1]: extension odd: unknown key 'colour'", text, 1, true)
    assert.matches("env-ecs.yaml is not a template name lumu knows; did you mean env-ecs.yml?", text, 1, true)
    assert.matches("kubernetes/ingress.yml ignored (Kubernetes manifests", text, 1, true)
    assert.matches("ingress.yml ignored (Kubernetes manifests", text, 1, true)
    assert.matches("changes nothing", text, 1, true)
  end)

  it("uses a url given twice once, and skips image-only entries", function()
    local m = model(entry("application", 1), { image = "x", _where = "mu.yml:12:5", _path = "extensions[2]" },
      entry("application", 3))
    local exts, stacks = run(m, { basedir = FIX .. "/seed" })
    assert.are.equal(1, #exts.extensions)
    assert.matches("extensions[3]: same url as extensions[1], skipped", messages(exts.warnings), 1, true)
    assert.are.same({ "application" }, by_name(stacks, "mu-service-web-acceptance").extensions)
  end)

  it("rejects unsupported schemes, bad pins and pins on folders", function()
    assert.matches("unsupported scheme 'ftp://'", load_err(model(entry("ftp://x/y.zip"))), 1, true)
    assert.matches("sha256 must be 64 hexadecimal digits",
      load_err(model(entry("application", 1, { sha256 = "abc" })), { basedir = FIX .. "/seed" }), 1, true)
    assert.matches("sha256 pins an archive, but .* is a directory",
      load_err(model(entry("application", 1, { sha256 = string.rep("a", 64) })), { basedir = FIX .. "/seed" }))
    write(tmp .. "/notes.txt", "x")
    assert.matches("neither a directory nor a .zip", load_err(model(entry("notes.txt"))), 1, true)
  end)

  it("does nothing, and needs no cache or HOME, without extensions", function()
    local exts = ext.load(model(), { getenv = function() return nil end })
    assert.are.same({ extensions = {}, commands = {}, warnings = {} }, exts)
    local stacks = plan(model())
    local n = #stacks
    local out, diags = ext.apply(stacks, exts, model())
    assert.are.equal(n, #out)
    assert.are.same({}, diags)
    out = ext.apply(stacks, nil, model())
    assert.are.equal(stacks, out)
  end)

  it("finds its cache under LUMU_CACHE_DIR, else HOME", function()
    local env = { LUMU_CACHE_DIR = "/c", HOME = "/h" }
    local getenv = function(k) return env[k] end
    assert.are.equal("/c/extensions", ext.cache_root({ getenv = getenv }))
    env.LUMU_CACHE_DIR = nil
    assert.are.equal("/h/.lumu/extensions", ext.cache_root({ getenv = getenv }))
    env.HOME = nil
    local root, err = ext.cache_root({ getenv = getenv })
    assert.is_nil(root)
    assert.matches("set HOME or LUMU_CACHE_DIR", err, 1, true)
    assert.are.equal("/x", ext.cache_root({ cache_dir = "/x/" }))
  end)

  it("raises on misuse", function()
    assert.has_error(function() ext.load(nil) end)
    assert.has_error(function() ext.load({}, 5) end)
    assert.has_error(function() ext.load({}, { s3_get = "x" }) end)
    assert.has_error(function() ext.apply(nil, nil, {}) end)
    assert.has_error(function() ext.apply({}, nil, nil) end)
  end)
end)

-- ---------------------------------------------------------------------------
describe("archives from a path", function()
  it("extracts a zip, descending into its single top-level directory", function()
    mkarchive("zip", tmp .. "/app.zip", FIX .. "/seed/application", "application-1.0")
    local exts, stacks, diags = run(model(entry("app.zip")))
    assert.are.equal("", messages(diags))
    local e = exts.extensions[1]
    assert.are.equal("file", e.source)
    assert.are.equal("application", e.name)
    assert.matches("/tree/application%-1%.0$", e.dir)
    assert.is_truthy(by_name(stacks, "mu-service-web-acceptance").template.Resources.ApplicationCpuAlarm)
    local key = sha("file://" .. fs.abspath(tmp .. "/app.zip"))
    local meta = json.decode(assert(fs.read(cache .. "/" .. key .. "/meta.json")))
    assert.are.equal(sha(assert(fs.read(tmp .. "/app.zip"))), meta.sha256)
  end)

  it("extracts .tar.gz and .tgz, also from file:// URLs", function()
    mkarchive("tgz", tmp .. "/rv.tar.gz", FIX .. "/replace-vpc")
    mkarchive("tgz", tmp .. "/rv.tgz", FIX .. "/replace-vpc", "top")
    local exts, stacks = run(model(entry("rv.tar.gz")))
    assert.are.equal("replace", exts.extensions[1].mode)
    assert.are.equal("a VPC of our own", by_name(stacks, "mu-vpc-acceptance").template.Description)
    exts = run(model(entry("file://" .. tmp .. "/rv.tgz")), { basedir = "/nonexistent" })
    assert.are.equal("replace-vpc", exts.extensions[1].name)
  end)

  it("revalidates local archives by content hash", function()
    local src = copy_fixture("replace-vpc")
    mkarchive("zip", tmp .. "/rv.zip", src)
    local exts = run(model(entry("rv.zip")))
    local marker = exts.extensions[1].dir .. "/marker"
    write(marker, "kept while the archive is unchanged")
    exts = run(model(entry("rv.zip")))
    assert.is_true(fs.isfile(marker))
    write(src .. "/vpc.yml", (assert(fs.read(src .. "/vpc.yml")):gsub("a VPC of our own", "changed")))
    mkarchive("zip", tmp .. "/rv.zip", src)
    local stacks
    exts, stacks = run(model(entry("rv.zip")))
    assert.is_false(fs.isfile(marker))
    assert.are.equal("changed", by_name(stacks, "mu-vpc-acceptance").template.Description)
    -- no temporary or old directories are left behind
    for _, n in ipairs(fs.list(cache)) do assert.is_nil(n:match("^%."), n) end
  end)

  it("checks a sha256 pin on a local archive", function()
    mkarchive("zip", tmp .. "/rv.zip", FIX .. "/replace-vpc")
    local actual = sha(assert(fs.read(tmp .. "/rv.zip")))
    local wrong = string.rep("0", 64)
    local err = load_err(model(entry("rv.zip", 1, { sha256 = wrong })))
    assert.matches("extensions[1]: extension rv.zip: sha256 mismatch: the entry pins " .. wrong, err, 1, true)
    assert.matches(actual, err, 1, true)
    assert.is_nil(fs.stat(cache .. "/" .. sha("file://" .. fs.abspath(tmp .. "/rv.zip"))))
    local exts = run(model(entry("rv.zip", 1, { sha256 = actual:upper() })))
    assert.are.equal(actual, exts.extensions[1].archive_sha256)
  end)

  it("turns links inside the archive into copies and leaves dangling ones out", function()
    mkarchive("symlink-inside-tgz", tmp .. "/links.tgz")
    local exts, stacks = run(model(entry("links.tgz")))
    local dir = exts.extensions[1].dir
    assert.are.equal("file", fs.stat(dir .. "/env-ecs.yml").type)
    assert.are.equal("file", fs.stat(dir .. "/vpc.yml").type)
    assert.is_nil(fs.stat(dir .. "/dangling.yml"))
    assert.matches("link ext/dangling.yml -> ext/nowhere.yml does not name a file", messages(exts.warnings), 1, true)
    assert.are.equal("AWS::S3::Bucket", by_name(stacks, "mu-environment-acceptance").template.Resources.X.Type)
    assert.are.equal("AWS::S3::Bucket", by_name(stacks, "mu-vpc-acceptance").template.Resources.X.Type)
  end)
end)

-- ---------------------------------------------------------------------------
describe("hostile archives", function()
  local arcs -- every case of mkarchive.py, built once (one python start-up)

  setup(function()
    arcs = assert(fs.tmpdir("lumu-ext-arcs-"))
    mkarchive("all", arcs)
  end)

  teardown(function()
    if arcs then fs.rmtree(arcs) end
  end)

  local function extract(kind, limits)
    local file = arcs .. "/" .. kind
    local dest = tmp .. "/out"
    assert(fs.mkdir(dest))
    return archive.extract(assert(fs.read(file)), dest, limits)
  end

  local function nothing_outside()
    -- only tmp/out (and the archive) may have been written
    assert.is_nil(fs.stat(tmp .. "/evil.yml"))
    assert.is_nil(fs.stat("/tmp/lumu-evil-abs.yml"))
    assert.is_nil(fs.stat("/tmp/lumu-evil.yml"))
    assert.is_nil(fs.stat(tmp .. "/outside.yml"))
  end

  it("rejects '..' in zip and tar names", function()
    local info, err = extract("dotdot-zip")
    assert.is_nil(info)
    assert.are.equal("../../evil.yml: '..' in name", err)
    info, err = extract("dotdot-tgz")
    assert.is_nil(info)
    assert.are.equal("ext/../../evil.yml: '..' in name", err)
    nothing_outside()
  end)

  it("rejects absolute names", function()
    for _, k in ipairs({ "absolute-zip", "absolute-tgz" }) do
      local info, err = extract(k)
      assert.is_nil(info)
      assert.are.equal("/tmp/lumu-evil-abs.yml: absolute name", err)
      fs.rmtree(tmp .. "/out")
    end
    nothing_outside()
  end)

  it("rejects symbolic links that leave the archive", function()
    local _, err = extract("symlink-abs-tgz")
    assert.are.equal("env-ecs.yml: symbolic link points outside the archive (absolute target)", err)
    fs.rmtree(tmp .. "/out")
    _, err = extract("symlink-up-tgz")
    assert.are.equal("a/b/env-ecs.yml: symbolic link points outside the archive", err)
    fs.rmtree(tmp .. "/out")
    _, err = extract("symlink-zip")
    assert.matches("symbolic link points outside", err, 1, true)
    nothing_outside()
  end)

  it("never writes through a symlink entry", function()
    local info, err = extract("symlink-write-tgz")
    assert.is_nil(info)
    assert.matches("^d: symbolic link", err)
    nothing_outside()
    assert.are.same({}, fs.list(tmp .. "/out"))
  end)

  it("rejects hard links that leave the archive", function()
    local _, err = extract("hardlink-up-tgz")
    assert.are.equal("env-ecs.yml: hard link points outside the archive", err)
  end)

  it("stops zip and tar.gz bombs at the size limit", function()
    local _, err = extract("bomb-zip")
    assert.are.equal("env-ecs.yml: file larger than the per-file limit", err)
    fs.rmtree(tmp .. "/out")
    _, err = extract("bomb-tgz", { max_file_bytes = 200 * 1024 * 1024, max_bytes = 1024 })
    assert.are.equal("big.bin: archive expands beyond the size limit", err)
  end)

  it("counts the bytes it decompresses, not what the headers claim", function()
    local _, err = extract("lying-zip", { max_bytes = 1024 * 1024 })
    assert.are.equal("env-ecs.yml: file larger than the per-file limit", err)
    assert.is_true(fs.stat(tmp .. "/out/env-ecs.yml").size <= 1024 * 1024)
    fs.rmtree(tmp .. "/out")
    _, err = extract("lying-zip", { max_bytes = 64 * 1024 * 1024 })
    assert.matches("^archive: ", err)
  end)

  it("limits the number of entries", function()
    local info, err = extract("many-zip", { max_entries = 100 })
    assert.is_nil(info)
    assert.are.equal("archive has more than 100 entries (the limit)", err)
    fs.rmtree(tmp .. "/out")
    info = extract("many-zip")
    assert.are.equal(150, info.files)
  end)

  it("rejects devices, FIFOs, duplicates, deep names and files under files", function()
    local cases = {
      ["fifo-tgz"] = "pipe: unsupported entry type (device, FIFO or socket)",
      ["dev-tgz"] = "null: unsupported entry type (device, FIFO or socket)",
      ["dup-tgz"] = "env-ecs.yml: given twice in the archive",
      ["dirfile-tgz"] = "a/b.yml: Not a directory",
    }
    for k, want in pairs(cases) do
      local _, err = extract(k)
      assert.are.equal(want, err)
      fs.rmtree(tmp .. "/out")
    end
    local _, err = extract("deep-tgz")
    assert.matches("name nested deeper than 64 levels$", err)
  end)

  it("rejects garbage and truncated archives", function()
    local _, err = extract("garbage")
    assert.are.equal("archive: Unrecognized archive format", err)
    fs.rmtree(tmp .. "/out")
    _, err = extract("truncated-tgz")
    assert.matches("^archive: ", err)
    fs.rmtree(tmp .. "/out")
    local info
    info, err = archive.extract("", tmp)
    assert.is_nil(info)
    assert.matches("^archive: ", err)
  end)

  it("fails load cleanly: no cache entry and no temporary directory are left", function()
    write(tmp .. "/evil.zip", assert(fs.read(arcs .. "/dotdot-zip")))
    local err = load_err(model(entry("evil.zip")))
    assert.matches("extension evil.zip: .*evil%.zip: %.%./%.%./evil%.yml: '%.%.' in name", err)
    assert.are.same({}, fs.list(cache))
    nothing_outside()
  end)

  it("reports a missing destination and raises on bad arguments", function()
    local info, err = archive.extract("x", tmp .. "/missing")
    assert.is_nil(info)
    assert.matches("missing: No such file or directory", err, 1, true)
    assert.has_error(function() archive.extract(nil, tmp) end)
    assert.has_error(function() archive.extract("x", "a\0b") end)
    assert.has_error(function() archive.extract("x", tmp, 5) end)
    assert.error_matches(function() archive.extract("x", tmp, { max_bytes = -1 }) end, "max_bytes must be an integer")
    assert.matches("^libarchive ", archive.version())
  end)
end)

-- ---------------------------------------------------------------------------
describe("over HTTP", function()
  local server, www
  local direct = { request = function(o) o.proxy = false; o.noproxy = false; return http.request(o) end }

  local function start()
    www = tmp .. "/www"
    assert(fs.mkdir(www))
    local f = assert(io.popen("exec python3 " .. q(FIX .. "/serve.py") .. " " .. q(www), "r"))
    local port = (f:read("l") or ""):match("^PORT (%d+)$")
    local pid = (f:read("l") or ""):match("^PID (%d+)$")
    assert(port and pid, "test server did not start")
    server = { f = f, pid = pid, base = "http://127.0.0.1:" .. port }
  end

  local function stop()
    if not server then return end
    local res = direct.request({ url = server.base .. "/shutdown", timeout = 5 })
    if not res then os.execute("kill " .. server.pid .. " 2>/dev/null") end
    server.f:close()
    server = nil
  end

  local function stats()
    local res = assert(direct.request({ url = server.base .. "/stats" }))
    return json.decode(res.body)
  end

  before_each(start)
  after_each(stop)

  it("downloads once, then revalidates with If-None-Match (304, no download)", function()
    mkarchive("zip", www .. "/app.zip", FIX .. "/seed/application", "application-1.0")
    local url = server.base .. "/app.zip"
    local m = model(entry(url))
    local exts, stacks = run(m, { http = direct })
    assert.are.equal("http", exts.extensions[1].source)
    assert.is_truthy(by_name(stacks, "mu-service-web-acceptance").template.Resources.ApplicationCpuAlarm)
    local meta = json.decode(assert(fs.read(cache .. "/" .. sha(url) .. "/meta.json")))
    assert.are.equal('"' .. sha(assert(fs.read(www .. "/app.zip"))) .. '"', meta.etag)
    assert.are.equal(url, meta.url)
    exts, stacks = run(m, { http = direct })
    assert.is_truthy(by_name(stacks, "mu-service-web-acceptance").template.Resources.ApplicationCpuAlarm)
    assert.are.same({ ["/app.zip"] = { 1, 1 } }, stats())
  end)

  it("downloads again when the archive changed", function()
    local src = copy_fixture("replace-vpc")
    mkarchive("zip", www .. "/rv.zip", src)
    local m = model(entry(server.base .. "/rv.zip"))
    run(m, { http = direct })
    write(src .. "/vpc.yml", (assert(fs.read(src .. "/vpc.yml")):gsub("a VPC of our own", "second")))
    mkarchive("zip", www .. "/rv.zip", src)
    local _, stacks = run(m, { http = direct })
    assert.are.equal("second", by_name(stacks, "mu-vpc-acceptance").template.Description)
    assert.are.same({ ["/rv.zip"] = { 2, 0 } }, stats())
  end)

  it("follows redirects", function()
    mkarchive("tgz", www .. "/rv.tar.gz", FIX .. "/replace-vpc")
    local exts = run(model(entry(server.base .. "/redirect/rv.tar.gz")), { http = direct })
    assert.are.equal("replace-vpc", exts.extensions[1].name)
  end)

  it("rejects a wrong sha256 pin: error with both hashes, nothing cached or applied", function()
    mkarchive("zip", www .. "/app.zip", FIX .. "/seed/application", "application-1.0")
    local url = server.base .. "/app.zip"
    local actual = sha(assert(fs.read(www .. "/app.zip")))
    local wrong = string.rep("ab", 32)
    local err = load_err(model(entry(url, 1, { sha256 = wrong })), { http = direct })
    assert.matches("extension " .. url .. ": sha256 mismatch: the entry pins " .. wrong .. " but " .. url .. " has "
      .. actual .. "; nothing from it is used", err, 1, true)
    assert.is_nil(fs.stat(cache .. "/" .. sha(url)))
    local exts = run(model(entry(url, 1, { sha256 = actual })), { http = direct })
    assert.are.equal(actual, exts.extensions[1].archive_sha256)
  end)

  it("re-downloads when the cached copy does not match a new pin", function()
    local src = copy_fixture("replace-vpc")
    mkarchive("zip", www .. "/rv.zip", src)
    local url = server.base .. "/rv.zip"
    run(model(entry(url)), { http = direct })
    write(src .. "/vpc.yml", (assert(fs.read(src .. "/vpc.yml")):gsub("a VPC of our own", "pinned")))
    mkarchive("zip", www .. "/rv.zip", src)
    local pin = sha(assert(fs.read(www .. "/rv.zip")))
    local _, stacks = run(model(entry(url, 1, { sha256 = pin })), { http = direct })
    assert.are.equal("pinned", by_name(stacks, "mu-vpc-acceptance").template.Description)
    -- offline, a cached copy with another hash is refused
    local err = load_err(model(entry(url, 1, { sha256 = string.rep("1", 64) })), { fetch = false })
    assert.matches("sha256 mismatch: the entry pins 1111", err, 1, true)
    assert.matches("(fetching is off)", err, 1, true)
  end)

  it("runs Lua code from a remote archive only when pinned", function()
    mkarchive("zip", www .. "/lua.zip", FIX .. "/lua-hooks")
    local url = server.base .. "/lua.zip"
    local actual = sha(assert(fs.read(www .. "/lua.zip")))
    local err = load_err(model(entry(url)), { http = direct })
    assert.matches("holds Lua code (init.lua) but comes from " .. url .. " without a sha256 pin; pin it (sha256: "
      .. actual .. ")", err, 1, true)
    local exts = run(model(entry(url, 1, { sha256 = actual })), { http = direct })
    assert.is_truthy(exts.commands.hello)
  end)

  it("reports HTTP errors", function()
    local err = load_err(model(entry(server.base .. "/missing.zip", 4)), { http = direct })
    assert.matches("^mu%.yml:14:5: extensions%[4%]: extension .*: cannot download .*/missing%.zip: HTTP 404$", err)
  end)

  it("works offline from the cache, and fails clearly without it", function()
    mkarchive("zip", www .. "/app.zip", FIX .. "/seed/application")
    local url = server.base .. "/app.zip"
    run(model(entry(url)), { http = direct })
    stop()
    local _, stacks = run(model(entry(url)), { fetch = false })
    assert.is_truthy(by_name(stacks, "mu-service-web-acceptance").template.Resources.ApplicationCpuAlarm)
    local other = "http://127.0.0.1:9/other.zip"
    local err = load_err(model(entry(other)), { fetch = false })
    assert.matches(other .. " is not in the extension cache (" .. cache .. "/" .. sha(other)
      .. ") and fetching is off (offline)", err, 1, true)
  end)

  it("falls back to the cache with a warning when the server is gone", function()
    mkarchive("zip", www .. "/app.zip", FIX .. "/seed/application")
    local url = server.base .. "/app.zip"
    run(model(entry(url)), { http = direct })
    stop()
    local exts = run(model(entry(url)), { http = direct })
    assert.matches("could not revalidate " .. url .. " (http: connect:", messages(exts.warnings), 1, true)
    assert.matches("using the cached copy", messages(exts.warnings), 1, true)
  end)

  it("downloads every time when the server sends no ETag", function()
    mkarchive("zip", www .. "/app.zip", FIX .. "/seed/application")
    local m = model(entry(server.base .. "/noetag/app.zip"))
    run(m, { http = direct })
    run(m, { http = direct })
    assert.are.same({ ["/app.zip"] = { 2, 0 } }, stats())
  end)

  it("limits the download size", function()
    mkarchive("zip", www .. "/app.zip", FIX .. "/seed/application")
    local err = load_err(model(entry(server.base .. "/app.zip")), { http = direct, limits = { max_archive = 100 } })
    assert.matches("cannot download .*too_large", err)
  end)
end)

-- ---------------------------------------------------------------------------
describe("s3", function()
  it("goes through the injected s3_get and revalidates with the ETag", function()
    mkarchive("zip", tmp .. "/app.zip", FIX .. "/seed/application")
    local body = assert(fs.read(tmp .. "/app.zip"))
    local calls = {}
    local function s3_get(bucket, key, etag)
      calls[#calls + 1] = { bucket, key, etag or "-" }
      if etag == '"e1"' then return false end
      return body, '"e1"'
    end
    local url = "s3://my-bucket/prefix/app.zip"
    local exts, stacks = run(model(entry(url)), { s3_get = s3_get })
    assert.are.equal("s3", exts.extensions[1].source)
    assert.is_truthy(by_name(stacks, "mu-service-web-acceptance").template.Resources.ApplicationCpuAlarm)
    run(model(entry(url)), { s3_get = s3_get })
    assert.are.same({ { "my-bucket", "prefix/app.zip", "-" }, { "my-bucket", "prefix/app.zip", '"e1"' } }, calls)
  end)

  it("fails clearly without the AWS client, and passes s3_get errors on", function()
    local saved_pre, saved = package.preload["lumu.aws"], package.loaded["lumu.aws"]
    finally(function() package.preload["lumu.aws"], package.loaded["lumu.aws"] = saved_pre, saved end)
    package.preload["lumu.aws"] = function() error("module 'lumu.aws' not found") end
    package.loaded["lumu.aws"] = nil
    local err = load_err(model(entry("s3://b/k.zip")))
    assert.matches("s3:// extensions need the AWS client (lumu.aws), which is not available: ", err, 1, true)
    err = load_err(model(entry("s3://b/k.zip")), { s3_get = function() return nil, "AccessDenied" end })
    assert.matches("cannot download s3://b/k.zip: AccessDenied", err, 1, true)
    err = load_err(model(entry("s3://b/k.zip")), { s3_get = function() error("client bug") end })
    assert.matches("cannot download s3://b/k.zip: .*client bug", err)
    assert.matches("expected s3://BUCKET/KEY", load_err(model(entry("s3://bucket-only.zip"))), 1, true)
  end)

  it("uses lumu.aws by default: GetObject with IfNoneMatch, 304, and the region S3 names", function()
    mkarchive("zip", tmp .. "/app.zip", FIX .. "/seed/application")
    local body = assert(fs.read(tmp .. "/app.zip"))
    local saved = package.loaded["lumu.aws"]
    finally(function() package.loaded["lumu.aws"] = saved end)
    local calls = {}
    package.loaded["lumu.aws"] = {
      client = function(service, o)
        local region = o and o.region or "us-west-2"
        return { region = region, call = function(_, op, p)
          calls[#calls + 1] = table.concat({ service, op, p.Bucket, p.Key, tostring(p.IfNoneMatch), region }, " ")
          if region ~= "eu-central-1" then
            return nil, { status = 301, code = "PermanentRedirect", data = { Endpoint = "b.s3.eu-central-1.amazonaws.com" } }
          end
          if p.IfNoneMatch == '"e9"' then return nil, { status = 304 } end
          return { Body = body, ETag = '"e9"' }
        end }
      end,
    }
    local m = model(entry("s3://b/ext/app.zip"))
    local _, stacks = run(m)
    assert.is_truthy(by_name(stacks, "mu-service-web-acceptance").template.Resources.ApplicationCpuAlarm)
    run(m)
    assert.are.same({
      "s3 GetObject b ext/app.zip nil us-west-2", "s3 GetObject b ext/app.zip nil eu-central-1",
      's3 GetObject b ext/app.zip "e9" us-west-2', 's3 GetObject b ext/app.zip "e9" eu-central-1',
    }, calls)
  end)
end)

-- ---------------------------------------------------------------------------
describe("the seed example", function()
  local zip

  -- A stand-in for GitHub: a redirect to codeload, then the archive.
  local function github(log)
    return {
      request = function(o)
        log[#log + 1] = o.url .. " " .. tostring(o.headers and o.headers["If-None-Match"])
        if o.url == GITHUB then
          return { status = 302, headers = { location = "https://codeload.github.com/stelligent/mu-cfn_nag/zip/v0.2" } }
        elseif o.url == "https://codeload.github.com/stelligent/mu-cfn_nag/zip/v0.2" then
          if o.headers and o.headers["If-None-Match"] == '"gh1"' then return { status = 304, headers = {} } end
          return { status = 200, headers = { etag = '"gh1"' }, body = zip }
        end
        return nil, "http: dns: unexpected URL " .. o.url
      end,
    }
  end

  local function seed_model()
    local m = assert(config.load(SEED))
    local base = assert(config.load(FIX .. "/model.yml"))
    base.extensions = m.extensions
    return base, m
  end

  before_each(function()
    zip = assert(fs.read(mkarchive("zip", tmp .. "/nag.zip", FIX .. "/cfn-nag")))
  end)

  it("fails clearly offline on the remote zip", function()
    local _, seed = seed_model()
    local err = load_err(seed, { fetch = false, basedir = FIX .. "/seed" })
    assert.matches("mu.yml:2:3: extensions[1]: extension " .. GITHUB .. ": " .. GITHUB
      .. " is not in the extension cache", err, 1, true)
    assert.matches("fetching is off %(offline%)$", err)
  end)

  it("loads both entries (remote through redirects, application from the local folder)", function()
    local m = seed_model()
    local log = {}
    local exts, stacks, diags = run(m, { http = github(log), basedir = FIX .. "/seed" })
    assert.are.equal("", messages(diags))
    assert.are.same({ "cfn_nag", "application" }, { exts.extensions[1].name, exts.extensions[2].name })
    assert.are.equal("0.2", exts.extensions[1].version)
    assert.are.same({ Enabled = true }, by_name(stacks, "mu-pipeline-web").template.Metadata.CfnNag)
    assert.is_truthy(by_name(stacks, "mu-service-web-acceptance").template.Resources.ApplicationCpuAlarm)
    -- offline now works from the cache; online revalidates on every hop
    run(m, { fetch = false, basedir = FIX .. "/seed" })
    run(m, { http = github(log), basedir = FIX .. "/seed" })
    assert.are.same({ GITHUB .. " nil", "https://codeload.github.com/stelligent/mu-cfn_nag/zip/v0.2 nil",
      GITHUB .. ' "gh1"', 'https://codeload.github.com/stelligent/mu-cfn_nag/zip/v0.2 "gh1"' }, log)
  end)

  it("refuses a redirect from https to http", function()
    local m = seed_model()
    local fake = { request = function() return { status = 301, headers = { location = "http://evil.example/x.zip" } } end }
    local err = load_err(m, { http = fake, basedir = FIX .. "/seed" })
    assert.matches("refusing a redirect from https to http://evil.example/x.zip", err, 1, true)
  end)
end)

-- ---------------------------------------------------------------------------
describe("Lua extensions", function()
  local function lua_ext(name, code, i)
    write(tmp .. "/" .. name .. "/init.lua", code)
    return entry(name, i)
  end

  it("runs on_template on every stack, adds stacks and returns commands", function()
    local m = model(entry("lua-hooks"))
    m.templates = { { stack = "mu-alerts", pattern = "^mu%-alerts$", fragment = { Outputs = { T = { Value = "x" } } },
      where = "mu.yml:40:3" } }
    local exts, stacks, diags = run(m, { basedir = FIX })
    assert.are.equal("", messages(diags))
    assert.are.equal("function", type(exts.commands.hello.run))
    local alerts = by_name(stacks, "mu-alerts")
    assert.are.equal("lua-hooks", alerts.extension)
    assert.are.equal("AWS::SNS::Topic", alerts.template.Resources.Topic.Type)
    for _, d in ipairs(stacks) do
      assert.are.equal("lua-hooks 3", d.template.Metadata["lumu:extension"], d.name)
      assert.are.equal("yes", d.tags["lua-hooks"], d.name)
      assert.are.same({ "lua-hooks" }, d.extensions)
    end
  end)

  it("applies templates overrides to the stacks it adds (when the pattern matches)", function()
    local m = assert(config.load_string([[
environments:
  - name: acceptance
extensions:
  - url: lua-hooks
templates:
  mu-alerts:
    Outputs:
      T:
        Value: x
]], { filename = tmp .. "/mu.yml", dir = tmp }))
    copy_fixture("lua-hooks")
    local _, stacks = run(m)
    assert.are.same({ Value = "x" }, by_name(stacks, "mu-alerts").template.Outputs.T)
    assert.are.same({ "templates" }, by_name(stacks, "mu-alerts").overrides)
  end)

  it("accepts a returned replacement template, and extension.lua", function()
    write(tmp .. "/repl/extension.lua", [[
return { on_template = function(d, t)
  if d.kind == "repo" then return { Resources = { Only = { Type = "AWS::SNS::Topic" } } } end
end }]])
    local _, stacks, diags = run(model(entry("repl")))
    assert.are.equal("", messages(diags))
    assert.are.same({ Only = { Type = "AWS::SNS::Topic" } }, by_name(stacks, "mu-repo-web").template.Resources)
    assert.is_truthy(by_name(stacks, "mu-vpc-acceptance").template.Resources.VPC)
  end)

  it("names the extension, the hook and file:line when a hook fails", function()
    local e = lua_ext("boom", [[
return {
  on_template = function(d, t)
    if d.kind == "vpc" then
      local x = nil
      return x.field
    end
  end,
}]], 2)
    local _, _, diags = run(model(e))
    assert.are.equal(2, #diags)
    local text = synth.format_diag(diags[1])
    assert.matches("^mu%.yml:12:5: extensions%[2%]: extension 'boom': on_template %(.*/boom/init%.lua:2%) failed on stack "
      .. "mu%-vpc%-acceptance: .*/boom/init%.lua:5: attempt to index a nil value", text)
  end)

  it("finds the file:line of errors that carry no position", function()
    local e = lua_ext("quiet", [[
local function deep() error({ code = 1 }) end
return {
  on_template = function(d)
    if d.kind == "repo" then deep() end
  end,
  stacks = function() error("no position", 0) end,
}]])
    local _, _, diags = run(model(e))
    local text = messages(diags)
    assert.matches("stacks %(.*/quiet/init%.lua:6%) failed: no position %(at .*/quiet/init%.lua:6%)", text)
    assert.matches("on_template %(.*/quiet/init%.lua:3%) failed on stack mu%-repo%-web: %(error object is a table "
      .. "value%) %(at .*/quiet/init%.lua:1%)", text)
  end)

  it("rejects bad results of on_template and stacks", function()
    local e = lua_ext("bad", [[
return {
  on_template = function(d) if d.kind == "repo" then return 42 end end,
  stacks = function(model, ctx)
    return {
      { name = "bad name!", kind = "x", template = { Resources = {} } },
      { name = ctx.stacks[1].name, kind = "x", template = { Resources = {} } },
      { name = "mu-fine", kind = "x", template = {} },
      { name = "mu-good", kind = "x", template = { Resources = { T = { Type = "AWS::SNS::Topic" } } } },
    }
  end,
}]])
    local _, stacks, diags = run(model(e))
    local text = messages(diags)
    assert.matches("on_template (" .. tmp .. "/bad/init.lua:2) returned a number for stack mu-repo-web", text, 1, true)
    assert.matches("stacks (" .. tmp .. "/bad/init.lua:3) returned a bad descriptor #1: stack: invalid stack name",
      text, 1, true)
    assert.matches("bad descriptor #2: a stack named mu-iam-common already exists", text, 1, true)
    assert.matches("bad descriptor #3: template has no Resources", text, 1, true)
    assert.are.equal(4, #diags)
    assert.is_truthy(by_name(stacks, "mu-good"))
    assert.is_nil(by_name(stacks, "mu-fine"))
  end)

  it("reports load-time problems: syntax, return value, unknown hooks, commands", function()
    lua_ext("syntax", "return {\n  on_template = function( end\n}\n")
    assert.matches("syntax/init%.lua:2: ", load_err(model(entry("syntax"))))
    lua_ext("notable", "return 5\n")
    assert.matches("must return a table of hooks", load_err(model(entry("notable"))), 1, true)
    lua_ext("unknown", "return { on_deploy = function() end }\n")
    assert.matches("unknown hook 'on_deploy'", load_err(model(entry("unknown"))), 1, true)
    lua_ext("badcmd", "return { commands = { hello = {} } }\n")
    assert.matches("commands.hello: expected a command module", load_err(model(entry("badcmd"))), 1, true)
    lua_ext("raises", "error('at load')\n")
    assert.matches("raises/init%.lua:1: at load", load_err(model(entry("raises"))))
  end)

  it("refuses the same command from two extensions", function()
    lua_ext("c1", "return { commands = { hi = { run = function() end } } }\n", 1)
    lua_ext("c2", "return { commands = { hi = { run = function() end } } }\n", 2)
    local err = load_err(model(entry("c1", 1), entry("c2", 2)))
    assert.matches("extensions[2]: extension 'c2': command 'hi' is also defined by extension 'c1'", err, 1, true)
  end)

  it("passes the chunk its name, version, directory and url", function()
    write(tmp .. "/info/mu-extension.yml", "name: informed\nversion: 1.5\n")
    lua_ext("info", [[
local info = ...
return { on_template = function(d, t)
  t.Metadata = { Info = info.name .. "|" .. info.version .. "|" .. info.url .. "|" .. info.dir }
end }]])
    local _, stacks = run(model(entry("info")))
    assert.are.equal("informed|1.5|info|" .. tmp .. "/info", by_name(stacks, "mu-repo-web").template.Metadata.Info)
  end)
end)
