--- Files, directories and paths (POSIX).
--
-- Expected failures (missing file, permission denied, ...) return
-- nil, "path: strerror" (e.g. "cfg.json: No such file or directory");
-- wrong argument types, NUL bytes in paths and out-of-range modes raise.
--
-- Modes: Lua has no octal literals (0600 is six hundred), so a mode is an
-- octal string ("600", "0600", "0o600") or an integer already holding the
-- bits (tonumber("600", 8) == 384).  Valid range 0..07777.
--
-- fs.read(path) -> string | nil, err            whole file, binary-safe
-- fs.same(path, data) -> boolean                path is a regular file holding
--   exactly data (false when it is missing or unreadable); reads without
--   making a Lua string of the file
-- fs.write(path, data [, opts]) -> true | nil, err
--   Atomic replace: writes a temp file ".<name>.tmp-XXXXXXXXXXXX" in the same
--   directory, fsyncs it and renames it over path (a symlink at path is
--   replaced, not followed).  opts.mode sets the exact permission bits;
--   default 0644 & ~umask.  On failure the temp file is removed.
-- fs.append(path, data [, opts]) -> true | nil, err
--   Appends (creating with opts.mode, default 0644 & ~umask).  Not atomic.
-- fs.mkdir(path [, mode]) -> true | nil, err
--   Creates path and missing parents (mkdir -p); an existing directory is
--   fine.  mode (default 0777, & ~umask) applies to the last component.
-- fs.list(dir) -> { name, ... } | nil, err      byte-sorted, without . and ..
-- fs.exists(p), fs.isdir(p), fs.isfile(p) -> boolean   (follow symlinks)
-- fs.stat(p [, opts]) -> { type=, size=, mtime=, mode= } | nil, err
--   type is "file" | "directory" | "link" | "other"; mtime float epoch
--   seconds; mode the permission bits (integer).  Does not follow a final
--   symlink (lstat) unless opts.follow is true.
-- fs.remove(p) -> true | nil, err               a file, link or empty directory
-- fs.rmtree(p) -> true | nil, err
--   Removes p and everything below it.  Symlinks are removed, never followed.
--   Stops at the first error.  Raises for "/" (and "" / "//" ...).
-- fs.glob(pattern) -> { path, ... }             sorted; {} when nothing matches
--   Wildcards per path segment: * (any run), ? (one char), [abc] [a-z] [!x]
--   (or [^x]); "**" as a whole segment matches zero or more directories (as
--   the last segment: everything below).  Wildcards do not match a leading
--   "." (hidden files) and ** does not descend into symlinked directories.
--   Use "\" to escape a wildcard character.
-- fs.walk(dir) -> iterator yielding path, type for everything below dir
--   Depth-first, entries sorted, directories before their contents; does
--   not descend into symlinks.  Raises "dir: strerror" if a directory
--   cannot be listed.
-- fs.join(...) -> string        parts joined with one "/" ("a/", "/b" -> "a/b")
-- fs.dirname(p), fs.basename(p) -> string      POSIX dirname(1)/basename(1)
-- fs.abspath(p) -> string       absolute and normalised ("." and ".." removed
--                               lexically, symlinks not resolved)
-- fs.realpath(p) -> string | nil, err          canonical, symlinks resolved
-- fs.cwd() -> string | nil, err
-- fs.chmod(p, mode) -> true | nil, err
-- fs.tmpdir([prefix]) -> path | nil, err
--   Creates a new mode-0700 directory under $TMPDIR (or /tmp) named
--   <prefix>XXXXXX (prefix default "lumu-"; must not contain "/").
local core = require "lumu._fs"

local M = {}

local function argerror(n, fname, msg)
  error("bad argument #" .. n .. " to '" .. fname .. "' (" .. msg .. ")", 3)
end

local function check_str(v, n, fname)
  if type(v) ~= "string" then argerror(n, fname, "string expected, got " .. type(v)) end
end

-- mode argument -> integer | nil
local function to_mode(m, n, fname)
  if m == nil then return nil end
  if type(m) == "string" then
    local digits = m:match("^0[oO]([0-7]+)$") or m:match("^([0-7]+)$")
    local v = digits and tonumber(digits, 8)
    if not v or v > 4095 then argerror(n, fname, "invalid mode " .. string.format("%q", m)) end
    return v
  end
  if math.type(m) ~= "integer" then argerror(n, fname, "mode expected, got " .. type(m)) end
  if m < 0 or m > 4095 then argerror(n, fname, "mode out of range") end
  return m
end

local function opts_mode(opts, n, fname)
  if opts == nil then return nil end
  if type(opts) ~= "table" then argerror(n, fname, "table expected, got " .. type(opts)) end
  return to_mode(opts.mode, n, fname)
end

M.read = core.read
M.same = core.same
M.remove = core.remove
M.realpath = core.realpath
M.cwd = core.cwd

function M.write(path, data, opts)
  check_str(path, 1, "write")
  check_str(data, 2, "write")
  return core.write(path, data, opts_mode(opts, 3, "write"))
end

function M.append(path, data, opts)
  check_str(path, 1, "append")
  check_str(data, 2, "append")
  return core.append(path, data, opts_mode(opts, 3, "append"))
end

function M.mkdir(path, mode)
  check_str(path, 1, "mkdir")
  return core.mkdir(path, to_mode(mode, 2, "mkdir"))
end

function M.chmod(path, mode)
  check_str(path, 1, "chmod")
  if mode == nil then argerror(2, "chmod", "mode expected, got nil") end
  return core.chmod(path, to_mode(mode, 2, "chmod"))
end

function M.list(dir)
  local names, err = core.list(dir)
  if not names then return nil, err end
  table.sort(names)
  return names
end

function M.stat(p, opts)
  if opts ~= nil and type(opts) ~= "table" then argerror(2, "stat", "table expected, got " .. type(opts)) end
  return core.stat(p, opts and opts.follow)
end

function M.exists(p)
  check_str(p, 1, "exists")
  return core.stat(p, true) ~= nil
end

function M.isdir(p)
  check_str(p, 1, "isdir")
  local st = core.stat(p, true)
  return st ~= nil and st.type == "directory"
end

function M.isfile(p)
  check_str(p, 1, "isfile")
  local st = core.stat(p, true)
  return st ~= nil and st.type == "file"
end

-- ---------------------------------------------------------------------------
-- Path strings
-- ---------------------------------------------------------------------------

function M.join(...)
  local n = select("#", ...)
  local out = {}
  for i = 1, n do
    local part = select(i, ...)
    check_str(part, i, "join")
    if part ~= "" then
      if #out > 0 then
        part = part:gsub("^/+", "")
        if part ~= "" then out[#out + 1] = part end
      else
        out[1] = part
      end
    end
  end
  if #out == 0 then return "" end
  -- strip the slashes each part ends with, except a lone "/"
  for i = 1, #out - 1 do
    local s = out[i]:gsub("/+$", "")
    out[i] = s
  end
  local s = table.concat(out, "/")
  if s == "" and #out > 0 then return "/" end
  return s
end

function M.dirname(p)
  check_str(p, 1, "dirname")
  if p == "" then return "." end
  local s = p:gsub("/+$", "")
  if s == "" then return "/" end
  local d = s:match("^(.*)/")
  if not d then return "." end
  d = d:gsub("/+$", "")
  if d == "" then return "/" end
  return d
end

function M.basename(p)
  check_str(p, 1, "basename")
  if p == "" then return "" end
  local s = p:gsub("/+$", "")
  if s == "" then return "/" end
  return s:match("([^/]*)$")
end

-- Lexical normalisation of an absolute path.
local function normalize(p)
  local parts = {}
  for seg in p:gmatch("[^/]+") do
    if seg == ".." then
      if #parts > 0 then parts[#parts] = nil end
    elseif seg ~= "." then
      parts[#parts + 1] = seg
    end
  end
  return "/" .. table.concat(parts, "/")
end

function M.abspath(p)
  check_str(p, 1, "abspath")
  if p:sub(1, 1) ~= "/" then
    local cwd, err = core.cwd()
    if not cwd then error(err, 2) end
    p = cwd .. "/" .. p
  end
  return normalize(p)
end

-- ---------------------------------------------------------------------------
-- Trees
-- ---------------------------------------------------------------------------

local function rmtree(p)
  local st, err = core.stat(p, false)
  if not st then return nil, err end
  if st.type == "directory" then
    local names
    names, err = core.list(p)
    if not names then return nil, err end
    for _, name in ipairs(names) do
      local ok
      ok, err = rmtree(p .. "/" .. name)
      if not ok then return nil, err end
    end
  end
  return core.remove(p)
end

function M.rmtree(p)
  check_str(p, 1, "rmtree")
  -- "link/" would make lstat follow the link
  local q = p:gsub("/+$", "")
  if q == "" and p ~= "" then argerror(1, "rmtree", "refusing to remove the root directory") end
  return rmtree(q)
end

function M.walk(dir)
  check_str(dir, 1, "walk")
  local names, err = M.list(dir)
  if not names then error(err, 2) end
  -- a stack of directory frames: { path, names, next index }
  local stack = { { dir, names, 1 } }
  local prefix = dir:gsub("/+$", "")
  if prefix == "" and dir ~= "" then prefix = "/" end
  stack[1][1] = prefix
  return function()
    while #stack > 0 do
      local top = stack[#stack]
      local i = top[3]
      local name = top[2][i]
      if name == nil then
        stack[#stack] = nil
      else
        top[3] = i + 1
        local path = top[1] == "/" and "/" .. name or top[1] .. "/" .. name
        local st = core.stat(path, false)
        local kind = st and st.type or "other"
        if kind == "directory" then
          local sub
          sub, err = M.list(path)
          if not sub then error(err, 2) end
          stack[#stack + 1] = { path, sub, 1 }
        end
        return path, kind
      end
    end
    return nil
  end
end

-- ---------------------------------------------------------------------------
-- Glob
-- ---------------------------------------------------------------------------

-- A literal character inside a Lua pattern set.
local function set_char(c)
  return c:match("%w") and c or "%" .. c
end

-- Translates one glob segment into an anchored Lua pattern; also returns
-- whether it has wildcards.
local function seg_pattern(seg)
  local out, i, n, magic = { "^" }, 1, #seg, false
  while i <= n do
    local c = seg:sub(i, i)
    if c == "\\" and i < n then
      i = i + 1
      out[#out + 1] = "%" .. seg:sub(i, i)
    elseif c == "*" then
      magic = true
      out[#out + 1] = ".*"
    elseif c == "?" then
      magic = true
      out[#out + 1] = "."
    elseif c == "[" then
      local j = i + 1
      local neg = false
      if seg:sub(j, j) == "!" or seg:sub(j, j) == "^" then neg = true; j = j + 1 end
      local class = {}
      local first = true
      local closed = false
      while j <= n do
        local d = seg:sub(j, j)
        if d == "]" and not first then closed = true; break end
        first = false
        if seg:sub(j + 1, j + 1) == "-" and j + 2 <= n and seg:sub(j + 2, j + 2) ~= "]" then
          -- a range: spelled out byte by byte, so no endpoint needs escaping
          for b = d:byte(), seg:byte(j + 2) do class[#class + 1] = set_char(string.char(b)) end
          j = j + 3
        else
          class[#class + 1] = set_char(d)
          j = j + 1
        end
      end
      if closed then
        magic = true
        out[#out + 1] = "[" .. (neg and "^" or "") .. table.concat(class) .. "]"
        i = j
      else
        out[#out + 1] = "%[" -- an unclosed "[" is literal
      end
    else
      out[#out + 1] = c:match("%w") and c or "%" .. c
    end
    i = i + 1
  end
  out[#out + 1] = "$"
  return table.concat(out), magic
end

local function unescape(seg)
  return (seg:gsub("\\(.)", "%1"))
end

local function child(base, name)
  if base == "" then return name end
  if base:sub(-1) == "/" then return base .. name end
  return base .. "/" .. name
end

local function lexists(p)
  return core.stat(p, false) ~= nil
end

local function isdir(p)
  local st = core.stat(p, true)
  return st ~= nil and st.type == "directory"
end

-- Every directory below base (not through symlinks), not including base.
local function subdirs(base, out)
  local names = core.list(base == "" and "." or base)
  if not names then return end
  table.sort(names)
  for _, name in ipairs(names) do
    if name:sub(1, 1) ~= "." then
      local p = child(base, name)
      local st = core.stat(p, false)
      if st and st.type == "directory" then
        out[#out + 1] = p
        subdirs(p, out)
      end
    end
  end
end

-- Everything below base (files and directories), not through symlinks.
local function everything(base, out)
  local names = core.list(base == "" and "." or base)
  if not names then return end
  for _, name in ipairs(names) do
    if name:sub(1, 1) ~= "." then
      local p = child(base, name)
      out[#out + 1] = p
      local st = core.stat(p, false)
      if st and st.type == "directory" then everything(p, out) end
    end
  end
end

local function glob_from(base, segs, i, out)
  local seg = segs[i]
  local last = i == #segs
  if seg == "**" then
    if last then
      everything(base, out)
      return
    end
    local dirs = { base }
    subdirs(base, dirs)
    for _, d in ipairs(dirs) do glob_from(d, segs, i + 1, out) end
    return
  end
  local pat, magic = seg_pattern(seg)
  if not magic then
    local p = child(base, unescape(seg))
    if last then
      if lexists(p) then out[#out + 1] = p end
    elseif isdir(p) then
      glob_from(p, segs, i + 1, out)
    end
    return
  end
  local names = core.list(base == "" and "." or base)
  if not names then return end
  local hidden_ok = seg:sub(1, 1) == "."
  for _, name in ipairs(names) do
    if (hidden_ok or name:sub(1, 1) ~= ".") and name:find(pat) then
      local p = child(base, name)
      if last then
        out[#out + 1] = p
      elseif isdir(p) then
        glob_from(p, segs, i + 1, out)
      end
    end
  end
end

function M.glob(pattern)
  check_str(pattern, 1, "glob")
  if pattern == "" then return {} end
  local base = ""
  local rest = pattern
  if pattern:sub(1, 1) == "/" then
    base = "/"
    rest = pattern:gsub("^/+", "")
  end
  local segs = {}
  for seg in rest:gmatch("[^/]+") do segs[#segs + 1] = seg end
  local out = {}
  if #segs == 0 then
    return lexists(base) and { base } or {}
  end
  glob_from(base, segs, 1, out)
  -- "**" can reach one path along several routes ("a/**/**/x")
  table.sort(out)
  local uniq = {}
  for _, p in ipairs(out) do
    if uniq[#uniq] ~= p then uniq[#uniq + 1] = p end
  end
  return uniq
end

-- ---------------------------------------------------------------------------
-- Temporary directories
-- ---------------------------------------------------------------------------

function M.tmpdir(prefix)
  if prefix == nil then prefix = "lumu-" end
  check_str(prefix, 1, "tmpdir")
  if prefix:find("/", 1, true) then argerror(1, "tmpdir", "prefix must not contain '/'") end
  local base = os.getenv("TMPDIR")
  if base == nil or base == "" then base = "/tmp" end
  base = base:gsub("/+$", "")
  if base == "" then base = "/" end
  return core.mkdtemp(child(base, prefix .. "XXXXXX"))
end

return M
