-- lumu.zip and its C core, libarchive's zip writer and seekable reader in
-- lumu._archive (zip/list/read): archives written here and checked by
-- independent readers (Python's zipfile, Info-ZIP's unzip -t, libarchive's
-- extract), zip.dir of a project directory (modes, exclusions, symlinks,
-- limits), misuse, and hostile archives (truncated, flipped bytes, zip
-- bombs, lies in the headers, corrupt data) that must fail with nil, err
-- and never raise or crash.
local core = require "lumu._archive"
local crypto = require "lumu.crypto"
local fs = require "lumu.fs"
local json = require "lumu.json"
local zip = require "lumu.zip"

local tmp
before_each(function() tmp = assert(fs.tmpdir("lumu-zip-")) end)
after_each(function() if tmp then fs.rmtree(tmp) end end)

-- Python's zipfile on the archive: {name = {size=, crc=, mode=, dir=, data_sha=}} or error text
local function python_view(bytes)
  local path = fs.join(tmp, "py.zip")
  assert(fs.write(path, bytes))
  local p = assert(io.popen("python3 - " .. path .. " 2>&1 <<'EOF'\n" .. [[
import hashlib, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
bad = z.testzip()
out = {"bad": bad, "entries": {}}
for i in z.infolist():
    data = z.read(i)
    out["entries"][i.filename] = {"size": i.file_size, "crc": i.CRC, "mode": (i.external_attr >> 16) & 0o7777,
        "dir": i.is_dir(), "sha": hashlib.sha256(data).hexdigest(), "method": i.compress_type,
        "utf8": bool(i.flag_bits & 0x800), "date": list(i.date_time)}
print(json.dumps(out))
]] .. "EOF", "r"))
  local text = p:read("a")
  p:close()
  local ok, v = pcall(json.decode, text)
  if not ok or type(v) ~= "table" then return nil, text end
  return v
end

local function sha(s) return crypto.hex(crypto.sha256(s)) end

-- Info-ZIP's unzip -t on the archive: true | false, output
local function unzip_test(bytes)
  local path = fs.join(tmp, "t.zip")
  assert(fs.write(path, bytes))
  local p = assert(io.popen("unzip -t " .. path .. " 2>&1", "r"))
  local text = p:read("a")
  local ok = p:close()
  return ok == true, text
end

-- {y, m, d, h, mi, s} of t in this process's time zone (libarchive writes
-- the DOS time fields with localtime)
local function local_date(t)
  local d = os.date("*t", t)
  return { d.year, d.month, d.day, d.hour, d.min, d.sec - d.sec % 2 }
end


describe("lumu._archive zip/list/read", function()
  it("round-trips entries, empty and incompressible data included", function()
    local entries = {
      { name = "a.txt", data = "hello" },
      { name = "d/", dir = true, mode = tonumber("700", 8) },
      { name = "d/big", data = string.rep("lumu ", 200000), mode = tonumber("600", 8), mtime = 1234567890 },
      { name = "d/noise", data = crypto.random_bytes(100000) },
      { name = "d/empty", data = "" },
    }
    for _, level in ipairs({ -1, 0, 1, 9 }) do
      local bytes = assert(core.zip(entries, level))
      local list = assert(core.list(bytes))
      assert.are.equal(#entries, #list)
      for i, e in ipairs(entries) do
        assert.are.equal(e.name, list[i].name)
        assert.are.equal(i, list[i].index)
        assert.are.equal(e.dir == true, list[i].dir)
        assert.are.equal(e.dir and "directory" or "file", list[i].type)
        assert.are.equal(e.mode or (e.dir and tonumber("755", 8) or tonumber("644", 8)), list[i].mode)
        assert.are.equal(e.mtime or 315532800, list[i].mtime)
        if not e.dir then
          assert.are.equal(#e.data, list[i].size)
          assert.are.equal(e.data, assert(core.read(bytes, i)))
          assert.are.equal(e.data, assert(core.read(bytes, e.name)))
        end
      end
      if level == 0 then
        assert.are.equal("store", list[3].method)
      else
        assert.are.equal("deflate", list[3].method)
      end
    end
    assert.is_true(#assert(core.zip({ entries[3] }, 9)) < 10000)
    local r, err = core.read(assert(core.zip(entries)), 2)
    assert.is_nil(r)
    assert.are.equal("zip: d/: not a regular file", err)
    r, err = core.read(assert(core.zip(entries)), 6)
    assert.is_nil(r)
    assert.are.equal("zip: no entry 6", err)
    assert.matches("^libarchive 3", core.version())
  end)

  it("raises on misuse and never leaks the writer", function()
    local bad = {
      { "x" }, { 42 }, { {} }, { { name = "" , data = "x" } }, { { name = "a\0b", data = "x" } },
      { { name = 7, data = "x" } }, { { name = "f" } }, { { name = "f", data = {} } },
      { { name = "d/", dir = true, data = "x" } }, { { name = "f", data = "x", mode = 4096 } },
      { { name = "f", data = "x", mode = -1 } }, { { name = "f", data = "x", mode = "rw" } },
      { { name = "f", data = "x", mtime = -1 } }, { { name = "f", data = "x", mtime = 1 << 40 } },
      { { name = "f", data = "x", mtime = 1.5 } },
    }
    for i, entries in ipairs(bad) do
      assert.error_matches(function() core.zip(entries) end, "bad argument #1 to 'zip'", nil, true)
      -- a good entry first: the writer is open when the bad one raises
      table.insert(entries, 1, { name = "ok" .. i, data = "fine" })
      assert.error_matches(function() core.zip(entries) end, "entry 2", nil, true)
    end
    assert.has_error(function() core.zip("x") end)
    assert.has_error(function() core.zip({}, 10) end)
    assert.has_error(function() core.zip({}, -2) end)
    assert.has_error(function() core.list(nil) end)
    assert.has_error(function() core.list("", -1) end)
    assert.has_error(function() core.read("x") end)
    assert.has_error(function() core.read("x", 0) end)
    assert.has_error(function() core.read("x", "a", -1) end)
    -- entries read through __index: a raising metamethod is an error too
    local trap = setmetatable({}, { __index = function() error("trap") end })
    assert.error_matches(function() core.zip({ { name = "ok", data = "x" }, trap }) end, "trap")
  end)

  it("limits entries and bytes on reading", function()
    local entries = {}
    for i = 1, 20 do entries[i] = { name = "f" .. i, data = string.rep("x", 1000) } end
    local bytes = assert(core.zip(entries))
    local r, err = core.list(bytes, 19)
    assert.is_nil(r)
    assert.are.equal("zip: more than 19 entries (the limit)", err)
    assert.are.equal(20, #assert(core.list(bytes, 20)))
    r, err = core.read(bytes, "f3", 999)
    assert.is_nil(r)
    assert.are.equal("zip: f3: larger than 999 bytes", err)
    assert.are.equal(1000, #assert(core.read(bytes, "f3", 1000)))
  end)
end)

describe("lumu.zip", function()
  local function sample()
    return {
      { name = "appspec.yml", data = "version: 0.0\nos: linux\n", mtime = 1700000000 },
      { name = "scripts/", mode = tonumber("755", 8) },
      { name = "scripts/start.sh", data = "#!/bin/sh\nexec ./app\n", mode = tonumber("755", 8), mtime = 1700000123 },
      { name = "static/noise.bin", data = crypto.random_bytes(4096) },
      { name = "static/big.txt", data = string.rep("compress me ", 10000) },
      { name = "naïve/ünïcode.txt", data = "utf-8 name" },
      { name = "empty.txt", data = "" },
    }
  end

  it("writes archives that Python's zipfile and unzip -t read with data, modes, times and UTF-8 names", function()
    local entries = sample()
    local bytes = assert(zip.create(entries))
    local ok, out = unzip_test(bytes)
    assert.is_true(ok, out)
    assert.matches("No errors detected", out)
    local v = assert(python_view(bytes))
    assert.is_true(v.bad == nil or v.bad == json.null)
    for _, e in ipairs(entries) do
      local got = v.entries[e.name]
      assert.is_table(got, e.name)
      -- the UTF-8 flag is set on names that need it (libarchive leaves ASCII names unflagged)
      assert.are.equal(e.name:find("[\128-\255]") ~= nil, got.utf8, e.name)
      if e.name:sub(-1) == "/" then
        assert.is_true(got.dir)
        assert.are.equal(tonumber("755", 8), got.mode)
      else
        assert.are.equal(#e.data, got.size)
        assert.are.equal(sha(e.data), got.sha)
        assert.are.equal(e.mode or tonumber("644", 8), got.mode)
      end
    end
    -- files are deflated (incompressible ones too), directories stored
    assert.are.equal(8, v.entries["static/noise.bin"].method)
    assert.are.equal(8, v.entries["static/big.txt"].method)
    assert.are.equal(0, v.entries["scripts/"].method)
    assert.are.same(local_date(1700000000), v.entries["appspec.yml"].date)
    assert.are.same(local_date(315532800), v.entries["empty.txt"].date)
    -- level 0 stores everything; out-of-range times are clamped
    local stored = assert(zip.create({ entries[1], entries[4], { name = "old", data = "x", mtime = -5 },
      { name = "new", data = "y", mtime = 1e300 } }, { level = 0 }))
    ok, out = unzip_test(stored)
    assert.is_true(ok, out)
    v = assert(python_view(stored))
    assert.are.equal(0, v.entries["appspec.yml"].method)
    assert.are.equal(0, v.entries["static/noise.bin"].method)
    assert.are.same(local_date(315532800), v.entries["old"].date)
    local list = assert(zip.list(stored))
    assert.are.equal(315532800, list[3].mtime)
    assert.are.equal(0x7fffffff, list[4].mtime)
    -- unzip -t notices a damaged archive: the cross-check can fail
    local at = stored:find("version: 0.0", 1, true)
    ok = unzip_test(stored:sub(1, at - 1) .. "V" .. stored:sub(at + 1))
    assert.is_false(ok)
  end)

  it("lists and reads its own archives, and libarchive extracts them", function()
    local entries = sample()
    local bytes = assert(zip.create(entries, { level = 9 }))
    local list = assert(zip.list(bytes))
    assert.are.equal(#entries, #list)
    for i, e in ipairs(entries) do
      assert.are.equal(e.name, list[i].name)
      if not list[i].dir then assert.are.equal(e.data, assert(zip.read(bytes, list[i]))) end
    end
    assert.are.equal(1700000123, list[3].mtime)   -- exact: the extended timestamp
    assert.are.equal(tonumber("755", 8), list[3].mode)
    assert.are.same({ "file", "directory" }, { list[1].type, list[2].type })
    assert.are.same({ 2, true, 0 }, { list[2].index, list[2].dir, list[2].size })
    assert.are.equal("deflate", list[5].method)
    assert.are.equal("utf-8 name", assert(zip.read(bytes, "naïve/ünïcode.txt")))
    local r, err = zip.read(bytes, "nope")
    assert.is_nil(r)
    assert.are.equal("zip: no entry nope", err)
    -- level 0 stores everything
    for _, e in ipairs(assert(zip.list(assert(zip.create(entries, { level = 0 }))))) do
      assert.are.equal("store", e.method)
    end
    local dest = fs.join(tmp, "x")
    assert(fs.mkdir(dest))
    -- (ASCII names: libarchive converts names to the locale's charset, C here)
    local ascii = {}
    for _, e in ipairs(entries) do
      if not e.name:find("[\128-\255]") then ascii[#ascii + 1] = e end
    end
    local info = assert(core.extract(assert(zip.create(ascii)), dest))
    assert.matches("ZIP", info.format)
    assert.are.equal(entries[3].data, fs.read(fs.join(dest, "scripts/start.sh")))
    assert.are.equal(entries[4].data, fs.read(fs.join(dest, "static/noise.bin")))
    assert.are.equal(tonumber("755", 8), fs.stat(fs.join(dest, "scripts/start.sh")).mode)
  end)

  it("raises on misuse: bad names, duplicates, data, modes, levels", function()
    for _, name in ipairs({ "", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a\\b", "a\0b", "a\nb", "/",
      string.rep("n", 65536) }) do
      assert.has_error(function() zip.create({ { name = name, data = "x" } }) end, nil, name)
    end
    assert.has_error(function() zip.create({ { name = "a", data = "1" }, { name = "a", data = "2" } }) end)
    assert.has_error(function() zip.create({ { name = "d/", data = "x" } }) end)
    assert.has_error(function() zip.create({ { name = "f" } }) end)
    assert.has_error(function() zip.create({ { name = "f", data = "x", mode = 4096 } }) end)
    assert.has_error(function() zip.create({ { name = "f", data = "x", mode = "644" } }) end)
    assert.has_error(function() zip.create({ { name = "f", data = "x", mtime = 0 / 0 } }) end)
    assert.has_error(function() zip.create({ { name = "f", data = "x" } }, { level = 10 }) end)
    assert.has_error(function() zip.create("x") end)
    assert.has_error(function() zip.create({ "x" }) end)
    assert.has_error(function() zip.list(42) end)
    assert.has_error(function() zip.read("x", 42) end)
    assert.has_error(function() zip.read("x", {}) end)
    assert.has_error(function() zip.read("x", "a", -1) end)
    assert.has_error(function() zip.read("x", "a", 1.5) end)
    assert.has_error(function() zip.create({}, "fast") end)
    -- more entries than a zip without zip64 holds: nil, err before any work
    local many = {}
    for i = 1, 65536 do many[i] = { name = "f" .. i, data = "" } end
    local r, err = zip.create(many)
    assert.is_nil(r)
    assert.are.equal("zip: more than 65535 entries (zip64 is not supported)", err)
    -- an empty archive is fine
    local empty = assert(zip.create({}))
    assert.are.equal(22, #empty)
    assert.are.same({}, assert(zip.list(empty)))
  end)

  it("rejects hostile archives with nil, err and never raises", function()
    local bytes = assert(zip.create(sample()))
    -- every truncation
    for n = 0, #bytes - 1, 7 do
      local ok, list, err = pcall(zip.list, bytes:sub(1, n))
      assert.is_true(ok, tostring(list))
      assert.is_nil(list)
      assert.matches("^zip: ", err)
    end
    -- every flipped byte: list and read either work or fail cleanly
    local small = assert(zip.create({ { name = "a.txt", data = string.rep("abc", 50) }, { name = "b/", mode = 493 } }))
    for i = 1, #small do
      local bad = small:sub(1, i - 1) .. string.char(small:byte(i) ~ 0xff) .. small:sub(i + 1)
      local ok, list = pcall(zip.list, bad)
      assert.is_true(ok, tostring(list))
      for _, e in ipairs(list or {}) do
        local rok, data, rerr = pcall(zip.read, bad, e)
        assert.is_true(rok, tostring(data))
        assert.is_true(type(data) == "string" or type(rerr) == "string")
      end
    end
    -- a bomb: the headers claim 10 bytes, the data inflates to 10 MB
    local bomb = string.rep("\0", 10 * 1024 * 1024)
    local honest = assert(zip.create({ { name = "bomb", data = bomb } }))
    assert.is_true(#honest < 20000)
    assert.are.equal(10 * 1024 * 1024, assert(zip.list(honest))[1].size)
    local lie = honest
    local lh = lie:find("PK\3\4", 1, true)       -- uncompressed size at offset 22 of the local header
    lie = lie:sub(1, lh + 21) .. string.pack("<I4", 10) .. lie:sub(lh + 26)
    local central = lie:find("PK\1\2", 1, true)  -- and at offset 24 of the central one
    lie = lie:sub(1, central + 23) .. string.pack("<I4", 10) .. lie:sub(central + 28)
    local e = assert(zip.list(lie))[1]
    assert.are.equal(10, e.size)
    local r, err = zip.read(lie, e)
    assert.is_nil(r)
    assert.are.equal("zip: bomb: more than 10 bytes (its declared size)", err)
    -- max_bytes caps what an honest archive may expand to
    r, err = zip.read(honest, "bomb", 1024 * 1024)
    assert.is_nil(r)
    assert.are.equal("zip: bomb: larger than 1048576 bytes", err)
    assert.are.equal(bomb, assert(zip.read(honest, "bomb")))
    -- corrupt stored data: libarchive's CRC-32 check
    local stored = assert(zip.create(sample(), { level = 0 }))
    local at = stored:find("version: 0.0", 1, true)
    r, err = zip.read(stored:sub(1, at - 1) .. "V" .. stored:sub(at + 1), "appspec.yml")
    assert.is_nil(r)
    assert.matches("^zip: appspec%.yml: .*CRC", err)
    -- random garbage, a lone end record pointing outside, a multi-disk one
    r, err = zip.list(crypto.random_bytes(5000))
    assert.is_nil(r)
    assert.matches("^zip: ", err)
    for _, eocd in ipairs({ string.pack("<c4I2I2I2I2I4I4I2", "PK\5\6", 0, 0, 3, 3, 1000, 5000, 0),
      string.pack("<c4I2I2I2I2I4I4I2", "PK\5\6", 1, 0, 0, 0, 0, 0, 0),
      string.pack("<c4I2I2I2I2I4I4I2", "PK\5\6", 0, 0, 0, 0, 0, 0, 0) .. "x" }) do
      r, err = zip.list(eocd)
      assert.is_nil(r)
      assert.matches("^zip: ", err)
      r, err = zip.read(eocd, "x")
      assert.is_nil(r)
      assert.matches("^zip: ", err)
    end
    -- names from a hostile archive are data: control bytes come back as they are
    local odd = assert(core.zip({ { name = "a\1b", data = "x" } }))
    assert.are.equal("a\1b", assert(zip.list(odd))[1].name)
    assert.are.equal("x", assert(zip.read(odd, "a\1b")))
  end)

  local bin = os.getenv("LUMU_BIN")
  local it_bin = bin and it or function(name) pending(name .. " (needs LUMU_BIN; run through ctest)") end
  it_bin("loads libarchive on first use and reports it missing as nil, err", function()
    local lumu = bin
    local script = fs.join(tmp, "nolib.lua")
    assert(fs.write(script, [[
local zip = require "lumu.zip"
local f = assert(io.open("/proc/self/maps")) local maps = f:read("a") f:close()
print(maps:find("libarchive", 1, true) == nil, zip.create({ { name = "a", data = "x" } }))
print(zip.list("PK\5\6" .. string.rep("\0", 18)))
print(pcall(zip.create, "x"))
]]))
    local p = assert(io.popen("LUMU_LAZY_DISABLE=archive " .. lumu .. " " .. script .. " 2>&1"))
    local out = p:read("a")
    p:close()
    local why = "zip: libarchive.so.13 not available: disabled by LUMU_LAZY_DISABLE"
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.same({ "true\tnil\t" .. why, "nil\t" .. why }, { lines[1], lines[2] })
    assert.matches("^false\t.*zip%.create: list of entries expected", lines[3])  -- misuse still raises
  end)

  it("archives a directory: files, modes, exclusions, links skipped, limits", function()
    local root = fs.join(tmp, "app")
    assert(fs.mkdir(fs.join(root, "scripts")))
    assert(fs.mkdir(fs.join(root, ".git/objects")))
    assert(fs.write(fs.join(root, ".git/HEAD"), "ref: refs/heads/main\n"))
    assert(fs.write(fs.join(root, "appspec.yml"), "version: 0.0\n"))
    assert(fs.write(fs.join(root, "scripts/start.sh"), "#!/bin/sh\n", { mode = "755" }))
    assert(fs.write(fs.join(root, ".env"), "A=1\n"))
    assert(os.execute("ln -s /etc/passwd " .. root .. "/passwd-link"))
    local bytes, info = zip.dir(root .. "/")
    assert.is_string(bytes, info)
    assert.are.same({ files = 3, dirs = 1, bytes = 27, skipped = { "passwd-link" } }, info)
    local names = {}
    for _, e in ipairs(assert(zip.list(bytes))) do names[#names + 1] = e.name .. ":" .. string.format("%o", e.mode) end
    assert.are.same({ ".env:644", "appspec.yml:644", "scripts/:755", "scripts/start.sh:755" }, names)
    -- exclusions replace the default list
    local b2, info2 = zip.dir(root, { exclude = { "scripts" } })
    assert.are.equal(3, info2.files)   -- .git/HEAD, .env, appspec.yml; no scripts/
    assert.are.equal("ref: refs/heads/main\n", zip.read(b2, ".git/HEAD"))
    -- limits
    local r, err = zip.dir(root, { max_bytes = 10 })
    assert.is_nil(r)
    assert.matches("more than 10 bytes", err)
    r, err = zip.dir(root, { max_files = 2 })
    assert.is_nil(r)
    assert.matches("more than 2 files", err)
    r, err = zip.dir(fs.join(root, "appspec.yml"))
    assert.is_nil(r)
    assert.matches("not a directory", err)
    assert.has_error(function() zip.dir(42) end)
  end)
end)
