--- Clocks, sleeping, and UTC timestamps (ISO 8601, SigV4, HTTP dates, durations).
--
-- Every conversion is UTC and independent of the TZ environment variable.
-- `t` arguments are epoch seconds (integer or float; floats are floored to
-- the second unless stated otherwise).  Bad argument types or out-of-range
-- times raise; unparsable strings return `nil, err`.
--
-- time.now() -> float
--   Wall-clock epoch seconds (CLOCK_REALTIME), microsecond resolution.
-- time.monotonic() -> float
--   Seconds from an arbitrary origin (CLOCK_MONOTONIC); use for intervals.
-- time.sleep(seconds)
--   Sleeps (fractions allowed).  Raises on a negative/NaN argument, and raises
--   "interrupted!" when Ctrl-C arrives during the sleep.
-- time.iso8601(t [, opts]) -> "2026-11-26T07:12:40Z"
--   opts.ms = true adds milliseconds: "2026-11-26T07:12:40.123Z" (t rounded
--   to the nearest millisecond).
-- time.amz_date(t) -> "20261126T071240Z"   (the SigV4 X-Amz-Date form)
-- time.http_date(t) -> "Thu, 26 Nov 2026 07:12:40 GMT"   (RFC 1123)
-- time.format(t, fmt) -> string
--   strftime(3) of t in UTC ("%Z" is "GMT").  Raises on a format with NUL.
-- time.parse(s) -> float epoch seconds | nil, err
--   Accepts:
--   * ISO 8601 / RFC 3339: "2026-11-26", "2026-11-26T07:12", "2026-11-26T07:12:40",
--     with optional fraction ".123456", and optional zone "Z", "+05:30", "-0800",
--     "+05"; "T" may be "t" or a space.  No zone means UTC.  Basic format
--     "20261126T071240Z" (amz_date) too.  Leap second :60 is accepted
--     (counts as the next second).
--   * RFC 1123 HTTP dates: "Thu, 26 Nov 2026 07:12:40 GMT" (weekday optional;
--     zone GMT, UTC, Z or +hhmm/-hhmm).
--   * Epoch seconds: "1795677160", "-5", "1795677160.25".
--   Fields are range-checked (month 1-12, day within the month, leap years,
--   hour 0-23, minute 0-59, second 0-60, offset up to 23:59).
-- time.parse_duration(s) -> seconds | nil, err
--   One or more <number><unit> parts, e.g. "90s", "15m", "2h", "30d", "1w",
--   "1h30m", "1.5h", "250ms" (units: ms s m h d w; spaces between parts
--   allowed).  An integer when the total is a whole number of seconds.
-- time.days_from_civil(y, m, d) -> days since 1970-01-01 (proleptic Gregorian)
-- time.timegm(y, mo, d [, h, mi, s]) -> integer epoch seconds of a UTC date
--   (fields are not range-checked here; out-of-range values carry over).
local core = require "lumu._time"

local M = {}

M.now = core.now
M.monotonic = core.monotonic
M.sleep = core.sleep

local floor = math.floor

-- Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic, so it
-- holds for any year, negative included).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400                            -- [0, 399]
  local mp = (m + 9) % 12                              -- March = 0
  local doy = (153 * mp + 2) // 5 + d - 1              -- [0, 365]
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy  -- [0, 146096]
  return era * 146097 + doe - 719468
end
M.days_from_civil = days_from_civil

local function timegm(y, mo, d, h, mi, s)
  -- normalise the month first so days_from_civil gets 1..12
  y = y + (mo - 1) // 12
  mo = (mo - 1) % 12 + 1
  return days_from_civil(y, mo, d) * 86400 + (h or 0) * 3600 + (mi or 0) * 60 + (s or 0)
end
M.timegm = timegm

local function is_leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local function days_in_month(y, m)
  if m == 2 and is_leap(y) then return 29 end
  return MDAYS[m]
end

local function check_time(t, fname)
  if type(t) ~= "number" then
    error("bad argument #1 to '" .. fname .. "' (number expected, got " .. type(t) .. ")", 3)
  end
end

function M.iso8601(t, opts)
  check_time(t, "iso8601")
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'iso8601' (table expected, got " .. type(opts) .. ")", 2)
  end
  if opts and opts.ms then
    local total = floor(t * 1000 + 0.5)
    local secs, ms = total // 1000, total % 1000
    return core.strftime("%Y-%m-%dT%H:%M:%S", secs) .. string.format(".%03dZ", ms)
  end
  return core.strftime("%Y-%m-%dT%H:%M:%SZ", t)
end

function M.amz_date(t)
  check_time(t, "amz_date")
  return core.strftime("%Y%m%dT%H%M%SZ", t)
end

local WDAY = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTH = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local MONTH_NUM = {}
for i, n in ipairs(MONTH) do MONTH_NUM[n:lower()] = i end
local WDAY_OK = {}
for _, n in ipairs(WDAY) do WDAY_OK[n:lower()] = true end

function M.http_date(t)
  check_time(t, "http_date")
  -- spelled out rather than %a/%b so the result never depends on the locale
  local y, mo, d, h, mi, s, wday = core.gmtime(t)
  return string.format("%s, %02d %s %04d %02d:%02d:%02d GMT", WDAY[wday + 1], d, MONTH[mo], y, h, mi, s)
end

function M.format(t, fmt)
  check_time(t, "format")
  if type(fmt) ~= "string" then
    error("bad argument #2 to 'format' (string expected, got " .. type(fmt) .. ")", 2)
  end
  return core.strftime(fmt, t)
end

-- Range-checks the fields and returns the epoch seconds (float when there
-- is a fraction), or nil, err.
local function build(s, y, mo, d, h, mi, sec, frac, off)
  if mo < 1 or mo > 12 then return nil, "month out of range in " .. string.format("%q", s) end
  if d < 1 or d > days_in_month(y, mo) then return nil, "day out of range in " .. string.format("%q", s) end
  if h > 23 then return nil, "hour out of range in " .. string.format("%q", s) end
  if mi > 59 then return nil, "minute out of range in " .. string.format("%q", s) end
  if sec > 60 then return nil, "second out of range in " .. string.format("%q", s) end
  local t = timegm(y, mo, d, h, mi, sec) - (off or 0)
  if frac and frac ~= "" then
    return t + tonumber("0." .. frac)
  end
  return t + 0.0
end

-- zone string -> offset seconds east of UTC | nil [, why]
local function zone_offset(z)
  if z == "" or z == "Z" or z == "z" then return 0 end
  local sign, hh, mm = z:match("^([+-])(%d%d):?(%d%d)$")
  if not sign then
    sign, hh = z:match("^([+-])(%d%d)$")
    mm = "00"
  end
  if not sign then return nil end
  hh, mm = tonumber(hh), tonumber(mm)
  if hh > 23 or mm > 59 then return nil, "time zone offset out of range" end
  local off = hh * 3600 + mm * 60
  return sign == "-" and -off or off
end

local function parse_iso(s)
  -- extended format: YYYY-MM-DD[(T|t| )hh:mm[:ss[.frac]]][zone]
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  local h, mi, sec, frac, zone
  if y then
    if rest == "" then
      h, mi, sec, zone = "0", "0", "0", ""
    else
      h, mi, rest = rest:match("^[Tt ](%d%d):(%d%d)(.*)$")
      if not h then return nil end
      sec, frac, zone = rest:match("^:(%d%d)[.,](%d+)(.*)$")
      if not sec then
        sec, zone = rest:match("^:(%d%d)(.*)$")
        if not sec then sec, zone = "0", rest end
      end
    end
  else
    -- basic format: YYYYMMDDThhmmss[.frac][zone] (a bare "YYYYMMDD" is
    -- taken as epoch seconds)
    y, mo, d, rest = s:match("^(%d%d%d%d)(%d%d)(%d%d)(.*)$")
    if not y then return nil end
    h, mi, sec, rest = rest:match("^[Tt](%d%d)(%d%d)(%d%d)(.*)$")
    if not h then return nil end
    frac, zone = rest:match("^[.,](%d+)(.*)$")
    if not frac then zone = rest end
  end
  local off, why = zone_offset(zone)
  if not off then
    return nil, (why or "bad time zone " .. string.format("%q", zone)) .. " in " .. string.format("%q", s)
  end
  return build(s, tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(sec), frac, off)
end

local function parse_http(s)
  -- [Wdy, ]DD Mon YYYY hh:mm:ss zone
  local wd, rest = s:match("^(%a%a%a),%s*(.*)$")
  if wd then
    if not WDAY_OK[wd:lower()] then return nil end
  else
    rest = s
  end
  local d, mon, y, h, mi, sec, zone = rest:match("^(%d%d?)%s+(%a%a%a)%s+(%d%d%d%d)%s+(%d%d):(%d%d):(%d%d)%s*(.*)$")
  if not d then return nil end
  local mo = MONTH_NUM[mon:lower()]
  if not mo then return nil, "bad month name " .. string.format("%q", mon) .. " in " .. string.format("%q", s) end
  local off
  local uz = zone:upper()
  if uz == "GMT" or uz == "UTC" or uz == "UT" or uz == "Z" then
    off = 0
  elseif zone:match("^[+-]%d%d%d%d$") then
    off = zone_offset(zone)
  end
  if not off then return nil, "bad time zone " .. string.format("%q", zone) .. " in " .. string.format("%q", s) end
  return build(s, tonumber(y), mo, tonumber(d), tonumber(h), tonumber(mi), tonumber(sec), nil, off)
end

function M.parse(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'parse' (string expected, got " .. type(s) .. ")", 2)
  end
  local str = s:match("^%s*(.-)%s*$")
  if str:match("^%-?%d+$") and #str < 19 then
    return tonumber(str) + 0.0
  end
  if str:match("^%-?%d+%.%d+$") and #str < 40 then
    return tonumber(str)
  end
  local t, err = parse_iso(str)
  if t or err then return t, err end
  t, err = parse_http(str)
  if t or err then return t, err end
  return nil, "unrecognised time " .. string.format("%q", s)
end

-- seconds per unit; "ms" divides instead so 1500ms is exactly 1.5
local UNITS = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }

function M.parse_duration(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'parse_duration' (string expected, got " .. type(s) .. ")", 2)
  end
  local bad = "invalid duration " .. string.format("%q", s)
  local str = s:match("^%s*(.-)%s*$")
  if str == "" then return nil, bad end
  local total, pos = 0, 1
  while pos <= #str do
    local num, after = str:match("^(%d+%.%d+)()", pos)
    if not num then num, after = str:match("^(%d+)()", pos) end
    if not num then return nil, bad end
    local unit, nxt = str:match("^(%a+)%s*()", after)
    if not unit then return nil, bad end
    local n = math.tointeger(tonumber(num)) or tonumber(num)
    if unit == "ms" then
      total = total + n / 1000
    elseif UNITS[unit] then
      total = total + n * UNITS[unit]
    else
      return nil, bad .. ": unknown unit " .. string.format("%q", unit)
    end
    pos = nxt
  end
  if total ~= total or total == math.huge or total == -math.huge then return nil, bad end
  if math.type(total) == "float" and total == floor(total) and total < 2^53 then
    return math.tointeger(total)
  end
  return total
end

return M
