--- lumu.zip: writing and reading zip archives -- the CodeDeploy bundles of
-- `lumu svc push --provider s3`.  The container is libarchive's
-- (lumu._archive: zip writer and seekable zip reader); this module checks
-- arguments and walks directories.  Written archives: UTF-8 names (flag bit
-- 11 on names that are not ASCII), Unix permission bits (made by Unix),
-- files deflated (stored with level 0), directories stored, sizes and
-- CRC-32 in data descriptors after the data, no zip64, and each mtime twice:
-- exactly (UTC, "UT" extended-timestamp extra field) and as an MS-DOS time
-- in the process's local time zone (2 s resolution).
--
-- local zip = require "lumu.zip"
--
-- zip.create(entries [, opts]) -> bytes | nil, err
--   entries: list of { name = "dir/file.txt" | "dir/", data = string (files;
--   none for directories, whose names end in "/"), mode = permission bits
--   (integer, default 0644 files / 0755 directories), mtime = epoch seconds
--   (default 1980-01-01; floored, clamped to 1980-01-01..2038-01-19, the
--   range of both time fields) }, written in the given order.
--   opts.level -1..9 (default -1, zlib's 6): 0 stores every file, other
--   levels deflate every non-empty file (incompressible data included).
--   Raises on misuse: entries not a list, a name that is not a relative
--   path ("", absolute, "." / ".." / empty components, "\", control
--   characters, over 65535 bytes), a duplicate name, a directory with data,
--   data not a string, a bad mode or mtime, a bad level.
--   nil, err ("zip: ..."): more than 65535 entries, data or archive past
--   4 GiB (zip64 is not written), or libarchive's own error.
--   Every function returns nil, "zip: libarchive.so.13 not available: ..."
--   when libarchive cannot be loaded (requiring lumu.zip loads nothing).
-- zip.dir(path [, opts]) -> bytes, info | nil, err
--   Every regular file and directory below path (sorted, names relative to
--   path, directories ending in "/"), with their permission bits and
--   mtimes.  opts.exclude = list of names (default {".git", ".hg", ".svn"}):
--   an entry with a path component among them is left out, with everything
--   below it.  Symbolic links, devices, FIFOs and sockets are left out and
--   listed in info.skipped.  opts.max_bytes (default 256 MiB of file data)
--   and opts.max_files (default 65535 entries) fail the call when exceeded;
--   opts.level as for create.  info = { files = n, dirs = n, bytes = n
--   (file data, uncompressed), skipped = { names } }.
--   nil, err: path is not a directory, a file cannot be read, a limit.
-- zip.list(bytes) -> entries | nil, err
--   The entries, in the order of their data in the archive, as libarchive
--   reads them through the central directory: { name = string, index = n
--   (position in this list), type = "file"|"directory"|"symlink"|"other",
--   dir = boolean, size = uncompressed bytes (from the central directory),
--   mode = permission bits (libarchive's default 0644/0755 when the archive
--   was not made on Unix), mtime = epoch seconds (the extended timestamp
--   when present, else the DOS time read as local time), method = "store" |
--   "deflate" | libarchive's name of another method ("bzip2", "lzma", ...) }.
--   Compressed sizes, CRC-32s and offsets are not exposed.
--   nil, err ("zip: ..."): no end of central directory record (truncated
--   data, garbage), an inconsistent or multi-disk archive, an encrypted
--   entry, more than 65535 entries.  An archive without entries (a lone end
--   record) gives {}.
-- zip.read(bytes, entry [, max_bytes]) -> data | nil, err
--   The data of one entry: entry is a table of zip.list(bytes) (its index
--   is used) or a name (the first entry of that name).  At most the declared
--   size and max_bytes (default 256 MiB) are inflated; libarchive checks the
--   CRC-32 and the size.  nil, err ("zip: ..."): no such entry, not a
--   regular file, larger than max_bytes, more data than declared, corrupt
--   data or CRC-32 mismatch, an unsupported method.
local fs = require "lumu.fs"

local M = {}

local MAX16, MAX32 = 0xffff, 0xffffffff
local DEFAULT_EXCLUDE = { ".git", ".hg", ".svn" }
local EPOCH_1980, MAX_MTIME = 315532800, 0x7fffffff

-- lumu._archive, loaded on first use (it loads libarchive.so.13): the
-- module | nil, "zip: libarchive.so.13 not available: <reason>"
local archive
local function core()
  if archive then return archive end
  local ok, mod = pcall(require, "lumu._archive")
  if not ok then return nil, "zip: " .. tostring(mod) end
  archive = mod
  return archive
end

-- nil | reason the name is not a relative path
local function bad_name(name)
  if name == "" then return "empty name" end
  if #name > MAX16 then return "name longer than 65535 bytes" end
  if name:find("[%c\\]") then return "control character or backslash in name" end
  if name:sub(1, 1) == "/" then return "absolute name" end
  local body = name:sub(-1) == "/" and name:sub(1, -2) or name
  if body == "" then return "empty name" end
  for comp in (body .. "/"):gmatch("([^/]*)/") do
    if comp == "" or comp == "." or comp == ".." then return "'" .. comp .. "' component in name" end
  end
  return nil
end

-- ---------------------------------------------------------------------------
-- Writing
-- ---------------------------------------------------------------------------

function M.create(entries, opts)
  if type(entries) ~= "table" then error("zip.create: list of entries expected", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("zip.create: options table expected", 2) end
  local level = opts.level or -1
  if math.type(level) ~= "integer" or level < -1 or level > 9 then error("zip.create: level must be -1..9", 2) end
  local list, seen, total = {}, {}, 0
  for i, e in ipairs(entries) do
    if type(e) ~= "table" or type(e.name) ~= "string" then
      error("zip.create: entry " .. i .. " needs a string name", 2)
    end
    local why = bad_name(e.name)
    if why then error("zip.create: entry " .. i .. " (" .. e.name:sub(1, 80) .. "): " .. why, 2) end
    if seen[e.name] then error("zip.create: duplicate entry name " .. e.name, 2) end
    seen[e.name] = true
    local dir = e.name:sub(-1) == "/"
    local data = e.data
    if dir then
      if data ~= nil and data ~= "" then error("zip.create: directory entry " .. e.name .. " with data", 2) end
      data = nil
    elseif type(data) ~= "string" then
      error("zip.create: entry " .. e.name .. ": data must be a string", 2)
    end
    local mode = e.mode or (dir and 493 or 420)
    if math.type(mode) ~= "integer" or mode < 0 or mode > 4095 then
      error("zip.create: entry " .. e.name .. ": mode must be permission bits 0..07777", 2)
    end
    local mtime = e.mtime or EPOCH_1980
    if type(mtime) ~= "number" or mtime ~= mtime then error("zip.create: entry " .. e.name .. ": bad mtime", 2) end
    mtime = math.floor(math.max(EPOCH_1980, math.min(MAX_MTIME, mtime)))
    if data and #data > MAX32 then return nil, "zip: " .. e.name .. " is larger than 4 GiB (zip64 is not supported)" end
    total = total + (data and #data or 0)
    list[i] = { name = e.name, data = data, dir = dir, mode = mode, mtime = mtime }
  end
  if #list > MAX16 then return nil, "zip: more than 65535 entries (zip64 is not supported)" end
  if total > MAX32 then return nil, "zip: archive larger than 4 GiB (zip64 is not supported)" end
  local c, cerr = core()
  if not c then return nil, cerr end
  return c.zip(list, level)
end

function M.dir(path, opts)
  if type(path) ~= "string" then error("zip.dir: directory path expected", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("zip.dir: options table expected", 2) end
  local exclude = {}
  for _, n in ipairs(opts.exclude or DEFAULT_EXCLUDE) do exclude[n] = true end
  local max_bytes = opts.max_bytes or (256 << 20)
  local max_files = opts.max_files or MAX16
  if not fs.isdir(path) then return nil, path .. ": not a directory" end
  local root = path:gsub("/+$", "")
  if root == "" then root = "/" end
  local prefix = root == "/" and "/" or (root .. "/")
  local entries = {}
  local info = { files = 0, dirs = 0, bytes = 0, skipped = {} }
  local walked, werr = pcall(function()
    for p, kind in fs.walk(root) do
      local rel = p:sub(#prefix + 1)
      local skip = false
      for comp in rel:gmatch("[^/]+") do
        if exclude[comp] then skip = true break end
      end
      if not skip then
        if kind == "file" or kind == "directory" then
          if #entries >= max_files then error({ limit = "more than " .. max_files .. " files below " .. path }) end
          local st, serr = fs.stat(p)
          if not st then error({ limit = serr }) end
          if kind == "directory" then
            entries[#entries + 1] = { name = rel .. "/", mode = st.mode, mtime = st.mtime }
            info.dirs = info.dirs + 1
          else
            info.bytes = info.bytes + (st.size or 0)
            if info.bytes > max_bytes then
              error({ limit = "more than " .. max_bytes .. " bytes of files below " .. path })
            end
            entries[#entries + 1] = { name = rel, mode = st.mode, mtime = st.mtime, path = p }
            info.files = info.files + 1
          end
        else
          info.skipped[#info.skipped + 1] = rel
        end
      end
    end
  end)
  if not walked then
    if type(werr) == "table" and werr.limit then return nil, werr.limit end
    return nil, tostring(werr)
  end
  local read = 0
  for _, e in ipairs(entries) do
    if e.path then
      local data, rerr = fs.read(e.path)
      if not data then return nil, rerr end
      read = read + #data
      if read > max_bytes then return nil, "more than " .. max_bytes .. " bytes of files below " .. path end
      e.data, e.path = data, nil
    end
    local why = bad_name(e.name)
    if why then return nil, path .. ": cannot store " .. e.name .. ": " .. why end
  end
  info.bytes = read
  local bytes, err = M.create(entries, { level = opts.level })
  if not bytes then return nil, err end
  return bytes, info
end

-- ---------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------

function M.list(bytes)
  if type(bytes) ~= "string" then error("zip.list: string expected", 2) end
  local c, cerr = core()
  if not c then return nil, cerr end
  return c.list(bytes, MAX16)
end

function M.read(bytes, entry, max_bytes)
  if type(bytes) ~= "string" then error("zip.read: archive bytes expected", 2) end
  if max_bytes ~= nil and (math.type(max_bytes) ~= "integer" or max_bytes < 0) then
    error("zip.read: max_bytes must be an integer >= 0", 2)
  end
  local which
  if type(entry) == "table" and math.type(entry.index) == "integer" and entry.index >= 1 then
    which = entry.index
  elseif type(entry) == "string" then
    which = entry
  else
    error("zip.read: entry (from zip.list) or name expected", 2)
  end
  local c, cerr = core()
  if not c then return nil, cerr end
  return c.read(bytes, which, max_bytes)
end

return M
