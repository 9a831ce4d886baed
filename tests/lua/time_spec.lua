local time = require "lumu.time"

-- 2026-11-26T07:12:40Z, checked with `date -u -d @1795677160`
local T = 1795677160

describe("lumu.time clocks", function()
  it("now() is a float near os.time()", function()
    local t = time.now()
    assert.equal("float", math.type(t))
    assert.is_true(math.abs(t - os.time()) < 2)
  end)

  it("now() has sub-second resolution", function()
    local seen_fraction = false
    for _ = 1, 5 do
      local t = time.now()
      if t ~= math.floor(t) then seen_fraction = true break end
      time.sleep(0.0013)
    end
    assert.is_true(seen_fraction)
  end)

  it("monotonic() never goes backwards and measures sleep()", function()
    local a = time.monotonic()
    time.sleep(0.05)
    local b = time.monotonic()
    assert.is_true(b >= a + 0.045)
    assert.is_true(b < a + 2)
  end)

  it("sleep(0) returns at once", function()
    local a = time.monotonic()
    time.sleep(0)
    assert.is_true(time.monotonic() - a < 0.5)
  end)

  it("sleep() rejects negative, NaN and non-numbers", function()
    assert.error_matches(function() time.sleep(-1) end, "non%-negative")
    assert.error_matches(function() time.sleep(0 / 0) end, "non%-negative")
    assert.error_matches(function() time.sleep("soon") end, "number expected")
  end)

  local bin = os.getenv("LUMU_BIN")
  local it_bin = bin and it or function(name) pending(name .. " (needs LUMU_BIN; run through ctest)") end
  it_bin("sleep() is interrupted by Ctrl-C with \"interrupted!\"", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write('io.stdout:write("ready\\n") io.stdout:flush() require("lumu.time").sleep(30) print("not reached")\n')
    f:close()
    local cmd = string.format(
      "%s %s > %s.out 2>&1 & pid=$!; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do " ..
      "grep -q ready %s.out 2>/dev/null && break; sleep 0.1; done; kill -INT $pid; wait $pid; echo rc=$? >> %s.out",
      bin, script, script, script, script)
    local t0 = time.monotonic()
    os.execute(cmd)
    local out = assert(io.open(script .. ".out")):read("a")
    os.remove(script)
    os.remove(script .. ".out")
    assert.is_true(time.monotonic() - t0 < 10)
    -- the CLI reports the "interrupted!" error as "lumu: interrupted", exit 130
    assert.matches("interrupted", out, 1, true)
    assert.is_nil(out:find("not reached", 1, true))
    assert.matches("rc=130", out, 1, true)
  end)
end)

describe("lumu.time formatting", function()
  it("iso8601 formats UTC seconds", function()
    assert.equal("2026-11-26T07:12:40Z", time.iso8601(T))
    assert.equal("1970-01-01T00:00:00Z", time.iso8601(0))
  end)

  it("iso8601 floors fractional seconds without ms", function()
    assert.equal("2026-11-26T07:12:40Z", time.iso8601(T + 0.999))
    assert.equal("1969-12-31T23:59:59Z", time.iso8601(-0.5))
  end)

  it("iso8601 with ms=true rounds to milliseconds", function()
    assert.equal("2026-11-26T07:12:40.123Z", time.iso8601(T + 0.123, { ms = true }))
    assert.equal("2026-11-26T07:12:41.000Z", time.iso8601(T + 0.9999, { ms = true }))
    assert.equal("2026-11-26T07:12:40.000Z", time.iso8601(T, { ms = true }))
  end)

  it("amz_date is the SigV4 basic format", function()
    assert.equal("20261126T071240Z", time.amz_date(T))
    assert.equal("20000229T235959Z", time.amz_date(951868799))
  end)

  it("http_date is RFC 1123", function()
    assert.equal("Thu, 26 Nov 2026 07:12:40 GMT", time.http_date(T))
    assert.equal("Thu, 01 Jan 1970 00:00:00 GMT", time.http_date(0))
  end)

  it("format() applies strftime in UTC regardless of TZ", function()
    assert.equal("2026/11/26 07:12:40 +0000", time.format(T, "%Y/%m/%d %H:%M:%S %z"))
    assert.equal("", time.format(T, ""))
    assert.equal("%", time.format(T, "%%"))
    assert.equal(330, tonumber(time.format(T, "%j")))
  end)

  it("format() handles long outputs", function()
    local s = time.format(T, string.rep("%Y", 1000))
    assert.equal(4000, #s)
  end)

  it("formatters reject non-numbers and absurd times", function()
    assert.error_matches(function() time.iso8601("now") end, "number expected")
    assert.error_matches(function() time.amz_date(nil) end, "number expected")
    assert.error_matches(function() time.format(T, 5) end, "string expected")
    assert.error_matches(function() time.format(T, "a\0b") end, "NUL")
    assert.error_matches(function() time.iso8601(1 / 0) end, "out of range")
    assert.error_matches(function() time.iso8601(T, "ms") end, "table expected")
  end)
end)

describe("lumu.time.parse", function()
  it("parses RFC 3339 with Z", function()
    assert.equal(T, time.parse("2026-11-26T07:12:40Z"))
    assert.equal("float", math.type(time.parse("2026-11-26T07:12:40Z")))
  end)

  it("parses fractional seconds", function()
    assert.near(T + 0.25, time.parse("2026-11-26T07:12:40.25Z"), 1e-6)
    assert.near(T + 0.123456, time.parse("2026-11-26T07:12:40.123456Z"), 1e-6)
  end)

  it("applies +hh:mm and -hhmm offsets", function()
    assert.equal(T, time.parse("2026-11-26T12:42:40+05:30"))
    assert.equal(T, time.parse("2026-11-25T23:12:40-0800"))
    assert.equal(T, time.parse("2026-11-26T09:12:40+02"))
    assert.equal(T, time.parse("2026-11-26T07:12:40+00:00"))
  end)

  it("treats a missing zone as UTC, and accepts a space or t separator", function()
    assert.equal(T, time.parse("2026-11-26T07:12:40"))
    assert.equal(T, time.parse("2026-11-26 07:12:40"))
    assert.equal(T, time.parse("2026-11-26t07:12:40z"))
    assert.equal(T - 40, time.parse("2026-11-26T07:12"))
  end)

  it("parses date-only as midnight UTC", function()
    assert.equal(T - (7 * 3600 + 12 * 60 + 40), time.parse("2026-11-26"))
    assert.equal(0, time.parse("1970-01-01"))
  end)

  it("parses the amz_date basic format", function()
    assert.equal(T, time.parse("20261126T071240Z"))
    assert.equal(T, time.parse(time.amz_date(T)))
  end)

  it("parses RFC 1123 HTTP dates", function()
    assert.equal(T, time.parse("Thu, 26 Nov 2026 07:12:40 GMT"))
    assert.equal(T, time.parse("26 Nov 2026 07:12:40 GMT"))
    assert.equal(T, time.parse("Thu, 26 Nov 2026 08:12:40 +0100"))
    assert.equal(T, time.parse(time.http_date(T)))
  end)

  it("parses epoch-second strings", function()
    assert.equal(T, time.parse("1795677160"))
    assert.equal(1.5, time.parse("1.5"))
    assert.equal(-5, time.parse("-5"))
    assert.equal(T, time.parse("  1795677160 "))
  end)

  it("handles leap years", function()
    assert.equal(951782400, time.parse("2000-02-29")) -- divisible by 400
    assert.equal(1709164800, time.parse("2024-02-29"))
    local t, err = time.parse("1900-02-29")                 -- divisible by 100
    assert.is_nil(t)
    assert.matches("day out of range", err)
    assert.is_nil((time.parse("2023-02-29")))
    assert.equal(time.parse("2024-03-01") - 86400, time.parse("2024-02-29"))
  end)

  it("handles dates before 1970 and far in the future", function()
    assert.equal(-86400, time.parse("1969-12-31T00:00:00Z"))
    assert.equal(253402300799, time.parse("9999-12-31T23:59:59Z"))
    assert.equal("9999-12-31T23:59:59Z", time.iso8601(253402300799))
  end)

  it("accepts a leap second :60", function()
    assert.equal(time.parse("2016-12-31T23:59:59Z") + 1, time.parse("2016-12-31T23:59:60Z"))
  end)

  it("round-trips iso8601 over many dates", function()
    for t = -2208988800, 4102444800, 86400 * 397 + 3671 do
      assert.equal(t, time.parse(time.iso8601(t)))
    end
  end)

  it("rejects out-of-range fields", function()
    for _, s in ipairs({ "2026-13-01", "2026-00-10", "2026-04-31", "2026-11-26T24:00:00Z",
                         "2026-11-26T07:60:00Z", "2026-11-26T07:12:61Z", "2026-11-26T07:12:40+24:00",
                         "Thu, 32 Nov 2026 07:12:40 GMT" }) do
      local t, err = time.parse(s)
      assert.is_nil(t)
      assert.matches("out of range", err)
    end
  end)

  it("rejects garbage with nil, err", function()
    for _, s in ipairs({ "", "yesterday", "2026-11-26T07:12:40Zjunk", "2026-11-26X07:12",
                         "2026-1-26", "Thu, 26 Foo 2026 07:12:40 GMT", "Thu, 26 Nov 2026 07:12:40",
                         "Fri 26 Nov", "1e9", "2026-11-26T07:12:40+5:30", "\0\255" }) do
      local t, err = time.parse(s)
      assert.is_nil(t)
      assert.is_string(err)
    end
  end)

  it("raises on a non-string", function()
    assert.error_matches(function() time.parse(12) end, "string expected")
  end)
end)

describe("lumu.time.parse_duration", function()
  it("parses single units", function()
    assert.equal(90, time.parse_duration("90s"))
    assert.equal(900, time.parse_duration("15m"))
    assert.equal(7200, time.parse_duration("2h"))
    assert.equal(30 * 86400, time.parse_duration("30d"))
    assert.equal(604800, time.parse_duration("1w"))
    assert.equal("integer", math.type(time.parse_duration("2h")))
  end)

  it("parses compound and fractional durations", function()
    assert.equal(5400, time.parse_duration("1h30m"))
    assert.equal(5400, time.parse_duration("1h 30m"))
    assert.equal(5400, time.parse_duration("1.5h"))
    assert.equal(0.25, time.parse_duration("250ms"))
    assert.equal(61.5, time.parse_duration("1m1s500ms"))
    assert.equal(0, time.parse_duration("0s"))
  end)

  it("rejects bad durations with nil, err", function()
    for _, s in ipairs({ "", "90", "h", "1x", "-5s", "1h-30m", "1.h", "1..5h", "5 s", "1hh" }) do
      local d, err = time.parse_duration(s)
      assert.is_nil(d)
      assert.matches("invalid duration", err)
    end
    assert.error_matches(function() time.parse_duration(90) end, "string expected")
  end)
end)

describe("lumu.time.timegm", function()
  it("matches known epochs and normalises months", function()
    assert.equal(0, time.timegm(1970, 1, 1))
    assert.equal(T, time.timegm(2026, 11, 26, 7, 12, 40))
    assert.equal(time.timegm(2027, 1, 1), time.timegm(2026, 13, 1))
    assert.equal(-62135596800, time.timegm(1, 1, 1))
  end)
end)
