-- Specs of lumu.json: encoding rules, decoding, round-trips, errors with key
-- paths, hostile input.
local json = require "lumu.json"

local function roundtrip(s)
  local v, err = json.decode(s)
  assert.is_nil(err)
  return json.encode(v)
end

describe("json.encode", function()
  it("encodes scalars", function()
    assert.are.equal("null", json.encode(json.null))
    assert.are.equal("null", json.encode(nil))
    assert.are.equal("true", json.encode(true))
    assert.are.equal("false", json.encode(false))
    assert.are.equal("42", json.encode(42))
    assert.are.equal("-9223372036854775808", json.encode(math.mininteger))
    assert.are.equal('"hi"', json.encode("hi"))
  end)

  it("keeps integers integers and floats floats", function()
    assert.are.equal("3", json.encode(3))
    assert.are.equal("3.0", json.encode(3.0))
    assert.are.equal("-0.0", json.encode(-0.0))
    assert.are.equal("1500.0", json.encode(1500.0))
    assert.are.equal("9007199254740992.0", json.encode(2.0 ^ 53))
  end)

  it("writes the shortest floats that round-trip", function()
    assert.are.equal("0.1", json.encode(0.1))
    assert.are.equal("0.3333333333333333", json.encode(1 / 3))
    assert.are.equal("[0.1,0.3333333333333333,2.5]", json.encode({ 0.1, 1 / 3, 2.5 }))
    assert.are.equal("1e300", json.encode(1e300))
    for _, x in ipairs({ 0.1, 1 / 3, 1e-7, 123.456, -2.5e-300, 1.7976931348623157e308, 5e-324, math.pi }) do
      local back = json.decode(json.encode(x))
      assert.are.equal(x, back)
      assert.are.equal("float", math.type(back))
    end
  end)

  it("escapes strings, keeps UTF-8 and NUL bytes", function()
    assert.are.equal([["a\"b\\c\n\t\u0000d"]], json.encode('a"b\\c\n\t\0d'))
    assert.are.equal('"é€😀"', json.encode("é€😀"))
    assert.are.equal([["\u00E9\u20AC"]], json.encode("é€", { ascii = true }))
    assert.are.equal('"a/b"', json.encode("a/b"))
  end)

  it("classifies tables: sequences are arrays, the rest objects", function()
    assert.are.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
    assert.are.equal('{"a":1}', json.encode({ a = 1 }))
    assert.are.equal("{}", json.encode({}))
    assert.are.equal('[[],{}]', json.encode({ json.array(), json.object() }))
    assert.are.equal("[]", json.encode(setmetatable({}, json.array_mt)))
    assert.are.equal('["x"]', json.encode(json.array({ "x" })))
  end)

  it("sorts keys by default and can keep traversal order", function()
    assert.are.equal('{"A":1,"B":2,"a":3,"b":{"x":1,"y":2}}',
      json.encode({ b = { y = 2, x = 1 }, a = 3, B = 2, A = 1 }))
    local s = json.encode({ z = 1, y = 2, x = 3 }, { sort_keys = false })
    assert.are.same({ z = 1, y = 2, x = 3 }, json.decode(s))
  end)

  it("puts json.ordered keys first, the rest sorted", function()
    local tpl = json.ordered({
      Resources = { B = 1 }, Outputs = {}, Zeta = 1, Alpha = 2,
      Description = "d", AWSTemplateFormatVersion = "2010-09-09",
    }, { "AWSTemplateFormatVersion", "Description", "Parameters", "Resources", "Outputs" })
    assert.are.equal('{"AWSTemplateFormatVersion":"2010-09-09","Description":"d",'
      .. '"Resources":{"B":1},"Outputs":{},"Alpha":2,"Zeta":1}', json.encode(tpl))
    -- a __jsonorder metafield does the same
    local t = setmetatable({ b = 1, a = 2, c = 3 }, { __jsonorder = { "c" } })
    assert.are.equal('{"c":3,"a":2,"b":1}', json.encode(t))
    -- an empty ordered table is an object
    assert.are.equal("{}", json.encode(json.ordered({}, { "x" })))
  end)

  it("pretty-prints with a trailing newline", function()
    assert.are.equal('{\n  "a": [\n    1,\n    2\n  ],\n  "b": {}\n}\n',
      json.encode({ a = { 1, 2 }, b = {} }, { pretty = true }))
    assert.are.equal('{\n    "a": 1\n}\n', json.encode({ a = 1 }, { pretty = 4 }))
    assert.are.equal("[]\n", json.encode(json.array(), { pretty = true }))
  end)

  it("raises with the key path", function()
    assert.error_matches(function()
      json.encode({ Resources = { Foo = { Properties = { Bad = print } } } })
    end, "json.encode: Resources.Foo.Properties.Bad: cannot encode a function", 1, true)
    assert.error_matches(function()
      json.encode({ a = { 1, 2, { x = 0 / 0 } } })
    end, "json.encode: a[3].x: cannot encode NaN", 1, true)
    assert.error_matches(function() json.encode(math.huge) end,
      "json.encode: cannot encode infinity", 1, true)
    assert.error_matches(function() json.encode({ a = io.stdout }) end,
      "a: cannot encode a userdata", 1, true)
    assert.error_matches(function() json.encode({ coroutine.create(print) }) end,
      "[1]: cannot encode a thread", 1, true)
  end)

  it("rejects cycles but allows shared tables", function()
    local t = {}
    t.self = t
    assert.error_matches(function() json.encode({ a = t }) end, "a.self: cycle detected", 1, true)
    local shared = { 1 }
    assert.are.equal('{"a":[1],"b":[1]}', json.encode({ a = shared, b = shared }))
  end)

  it("rejects sparse arrays, mixed tables and non-string keys", function()
    assert.error_matches(function() json.encode({ [1] = 1, [3] = 3 }) end, "sparse array", 1, true)
    assert.error_matches(function() json.encode({ 1, 2, x = 3 }) end, "cannot encode a table with key 1")
    assert.error_matches(function() json.encode({ [true] = 1 }) end, "key of type boolean", 1, true)
    assert.error_matches(function() json.encode({ [1.5] = 1 }) end, "key 1.5", 1, true)
    assert.error_matches(function() json.encode(json.object({ 1 })) end,
      "object keys must be strings (found key 1)", 1, true)
    assert.error_matches(function() json.encode(json.array({ x = 1 })) end,
      "table marked as array has keys other than 1..n", 1, true)
  end)

  it("rejects invalid UTF-8 in strings and keys", function()
    assert.error_matches(function() json.encode({ k = "\xff" }) end, "k: invalid UTF-8 in string", 1, true)
    assert.error_matches(function() json.encode({ ["\xc0\x80"] = 1 }) end, "invalid UTF-8 in object key", 1, true)
    assert.error_matches(function() json.encode("\xed\xa0\x80") end, "invalid UTF-8", 1, true) -- surrogate
  end)

  it("limits nesting depth", function()
    local deep = {}
    local cur = deep
    for _ = 1, 100000 do
      local n = {}
      cur[1] = n
      cur = n
    end
    assert.error_matches(function() json.encode(deep) end, "nesting deeper than 1000 levels", 1, true)
    local ok = {}
    cur = ok
    for _ = 1, 999 do
      local n = {}
      cur[1] = n
      cur = n
    end
    assert.are.equal(string.rep("[", 999) .. "{}" .. string.rep("]", 999), json.encode(ok))
  end)

  it("checks its arguments and options", function()
    assert.has_error(function() json.encode() end)
    assert.error_matches(function() json.encode(1, "x") end, "table expected")
    assert.error_matches(function() json.encode(1, { pretty = "yes" }) end, "bad option 'pretty'")
    assert.error_matches(function() json.encode(1, { pretty = 99 }) end, "bad option 'pretty'")
    assert.error_matches(function() json.encode(1, { sort_keys = 1 }) end, "bad option 'sort_keys'")
  end)
end)

describe("json.decode", function()
  it("decodes every JSON type", function()
    local v = json.decode('{"s":"x","i":-7,"f":2.5,"t":true,"n":null,"a":[1,"2"],"o":{"k":{}}}')
    assert.are.same({ s = "x", i = -7, f = 2.5, t = true, n = json.null, a = { 1, "2" }, o = { k = {} } }, v)
    assert.are.equal("integer", math.type(v.i))
    assert.are.equal(json.null, v.n)
    assert.are.equal(json.array_mt, getmetatable(v.a))
    assert.are.equal(json.object_mt, getmetatable(v.o.k))
  end)

  it("accepts scalars at the top level", function()
    assert.are.equal(json.null, json.decode("null"))
    assert.are.equal(1, json.decode(" 1 "))
    assert.are.equal("x", json.decode('"x"'))
    assert.is_false(json.decode("false"))
  end)

  it("keeps integers and floats apart", function()
    assert.are.equal("integer", math.type(json.decode("10")))
    assert.are.equal("float", math.type(json.decode("10.0")))
    assert.are.equal("float", math.type(json.decode("1e2")))
    assert.are.equal(100.0, json.decode("1E+2"))
    assert.are.equal(math.maxinteger, json.decode("9223372036854775807"))
    assert.are.equal(math.mininteger, json.decode("-9223372036854775808"))
  end)

  it("rejects integers beyond 64 bits", function()
    local v, err = json.decode("[12345678901234567890]")
    assert.is_nil(v)
    assert.matches("^1:21: too big integer", err)
  end)

  it("decodes unicode escapes, surrogate pairs and NUL", function()
    assert.are.equal("é€😀", json.decode([["\u00e9\u20ac\ud83d\ude00"]]))
    local s = json.decode([["a\u0000b"]])
    assert.are.equal(3, #s)
    assert.are.equal("a\0b", s)
    assert.are.equal('"a\\u0000b"', json.encode(s))
    local v, err = json.decode([["\ud800"]])
    assert.is_nil(v)
    assert.matches("^1:%d+: invalid Unicode", err)
  end)

  it("lets the last duplicate key win, or rejects duplicates", function()
    assert.are.same({ a = 2 }, json.decode('{"a":1,"a":2}'))
    local v, err = json.decode('{"a":1,\n"a":2}', { reject_duplicates = true })
    assert.is_nil(v)
    assert.matches("^2:%d+: duplicate object key", err)
  end)

  it("returns nil and line:col for malformed input", function()
    local cases = {
      { "", "^1:1: " },
      { "[1,2", "^1:4: ']' expected" },
      { '{"a" 1}', "^1:6: ':' expected" },
      { "{\n  \"a\": tru\n}", "^2:%d+: invalid token" },
      { "[1,]", "^1:4: " },
      { "01", "^1:%d+: " },
      { "NaN", "^1:%d+: " },
      { "[1] x", "^1:5: end of file expected" },
      { '"\xff"', "^1:1: unable to decode byte 0xff" },
      { '{"\\u0000":1}', "NUL byte in object key" },
    }
    for _, c in ipairs(cases) do
      local v, err = json.decode(c[1])
      assert.is_nil(v)
      assert.matches(c[2], err)
    end
  end)

  it("survives hostile nesting", function()
    for _, open in ipairs({ "[", "{\"a\":" }) do
      local v, err = json.decode(string.rep(open, 100000))
      assert.is_nil(v)
      assert.matches("nesting deeper than 1000 levels", err)
    end
    local v, err = json.decode(string.rep("[", 1001) .. string.rep("]", 1001))
    assert.is_nil(v)
    assert.are.equal("1:1001: nesting deeper than 1000 levels", err)
    assert.is_table(json.decode(string.rep("[", 1000) .. string.rep("]", 1000)))
    -- brackets inside strings do not count
    assert.are.equal(5000, #json.decode('"' .. string.rep("[", 5000) .. '"'))
  end)

  it("handles large documents", function()
    local parts = {}
    for i = 1, 20000 do parts[i] = string.format('{"id":%d,"name":"n%d","tags":[]}', i, i) end
    local s = "[" .. table.concat(parts, ",") .. "]"
    local v = assert(json.decode(s))
    assert.are.equal(20000, #v)
    assert.are.equal("n20000", v[20000].name)
    assert.are.equal(s, json.encode(v)) -- keys id < name < tags are already sorted
  end)

  it("raises on a non-string argument", function()
    assert.error_matches(function() json.decode({}) end, "string expected")
    assert.error_matches(function() json.decode("1", 5) end, "table expected")
  end)
end)

describe("json round-trips", function()
  it("keeps null, [] and {} exactly", function()
    local cases = {
      "null", "[]", "{}", "[[]]", "[{}]", '{"a":[]}', '{"a":{}}', '{"a":null}', "[null,null]",
      '{"a":{"b":{"c":[]}}}', '[[],[[]],{},{"x":[{}]}]', '{"":""}', "[1,2.5,-3,true,false]",
      '{"a b":1,"é":2}', '"\\u0000"', "0", "-0.0", "1e300", "[0.1,0.25,1.5]",
    }
    for _, s in ipairs(cases) do
      assert.are.equal(s, roundtrip(s))
    end
  end)

  it("uses one float precision per document (values still round-trip)", function()
    local s = json.encode({ 0.1, 0.30000000000000004 })
    assert.are.equal("[0.10000000000000001,0.30000000000000004]", s)
    assert.are.same({ 0.1, 0.30000000000000004 }, json.decode(s))
  end)

  it("round-trips values through encode/decode", function()
    local values = {
      { a = 1, b = { c = { 1, 2, 3 }, d = json.null } },
      { "x", "y", json.object(), json.array() },
      { nested = { deeper = { deepest = "ok" } } },
      { int = math.maxinteger, neg = math.mininteger, flt = -1.25e-10 },
    }
    for _, v in ipairs(values) do
      assert.are.same(v, json.decode(json.encode(v)))
      assert.are.same(v, json.decode(json.encode(v, { pretty = true })))
    end
  end)
end)

describe("json.encode fast path", function()
  -- json.encode writes text directly and falls back to the jansson tree
  -- (core._encode_jansson) for what it does not handle; both must give the
  -- same bytes, and the same error, for every value and option.
  local core = require "lumu._json"
  local OPTS = { nil, { pretty = true }, { pretty = 4 }, { pretty = false }, { sort_keys = false },
    { ascii = true }, { pretty = 1, ascii = true } }

  local function same(v, opts)
    local ok1, a = pcall(json.encode, v, opts)
    local ok2, b = pcall(core._encode_jansson, v, opts)
    assert.are.equal(ok2, ok1)
    assert.are.equal(b, a)
    return a
  end

  -- a small deterministic generator (no math.random: reproducible)
  local seed = 12345
  local function rnd(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return seed % n + 1
  end
  local PIECES = { "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\r", "\b", "\f", "\1", "\31", "\127",
    "é", "€", "😀", "\0", "Fn::Sub", "${AWS::Region}", "\xff", "\xc0\x80", "\xed\xa0\x80", "\xe2\x82" }
  local function str(bad)
    local parts = {}
    for i = 1, rnd(6) - 1 do
      local k = rnd(#PIECES)
      if not bad and k > #PIECES - 4 then k = 1 end
      parts[i] = PIECES[k]
    end
    return table.concat(parts)
  end
  local FLOATS = { 0.1, 2.5, 1 / 3, 1500.0, -0.0, 1e300, 5e-324, 0.1 + 0.2, 123.456, 2.0 ^ 53, 1e-7 }
  local function value(depth, bad)
    local k = rnd(depth > 4 and 6 or 11)
    if k == 1 then return str(bad) end
    if k == 2 then return rnd(2) == 1 and math.mininteger or (rnd(2000) - 1000) end
    if k == 3 then return FLOATS[rnd(#FLOATS)] end
    if k == 4 then return rnd(2) == 1 end
    if k == 5 then return json.null end
    if k == 6 then return str(bad) end
    local t = {}
    local n = rnd(5) - 1
    if k <= 8 then
      for i = 1, n do t[i] = value(depth + 1, bad) end
      if rnd(4) == 1 then json.array(t) end
    else
      local keys = {}
      for i = 1, n do
        local key = str(bad)
        t[key] = value(depth + 1, bad)
        keys[i] = key
      end
      local r = rnd(5)
      if r == 1 then json.object(t)
      elseif r == 2 then json.ordered(t, { keys[n] or "x", "missing", keys[1] or "y", keys[n] or "x" })
      end
    end
    return t
  end

  it("gives jansson's bytes for random documents", function()
    for i = 1, 400 do
      local v = value(1, false)
      same(v, OPTS[i % #OPTS + 1])
    end
  end)

  it("raises jansson's errors for random bad documents", function()
    local failed = 0
    for i = 1, 300 do
      local v = value(1, true)
      local ok = pcall(json.encode, v)
      if not ok then failed = failed + 1 end
      same(v, OPTS[i % #OPTS + 1])
    end
    assert.is_true(failed > 20)
  end)

  it("matches on edge cases", function()
    local t = {}
    t.self = t
    local deep, cur = {}, nil
    cur = deep
    for _ = 1, 998 do cur[1] = {}; cur = cur[1] end
    cur[1] = { a = 1 } -- 1000 levels: too deep
    local cases = {
      {}, json.array(), json.object(), { {} }, { a = {} }, json.ordered({}, { "a" }),
      setmetatable({ b = 1, a = 2 }, { __jsonorder = { "b", "b", "zz" } }),
      setmetatable({ b = 1 }, { __jsonorder = { 1 } }), setmetatable({ b = 1 }, { __jsonorder = "b" }),
      setmetatable({ 1, 2 }, { __jsonorder = "ignored for arrays" }),
      setmetatable({ x = 1 }, { __index = {} }), { [1] = 1, [3] = 3 }, { 1, 2, x = 3 }, { [1.5] = 1 },
      { a = print }, { a = 0 / 0 }, { a = math.huge }, t, { a = t }, deep, { 0.1, { 0.1 + 0.2 } },
      { 0.5, 0.1 + 0.2, 0.5 }, string.rep("x", 100000), string.rep("\0", 1000), { [""] = "" },
      { [string.rep("k", 300)] = 1, [string.rep("k", 299)] = 2 },
    }
    for _, v in ipairs(cases) do
      for _, o in ipairs(OPTS) do same(v, o) end
    end
    local big = {}
    for i = 1, 3000 do big["k" .. i] = { i, "v" .. i, { x = i / 7 } } end
    same(big)
    same(big, { pretty = true, sort_keys = false })
  end)
end)

describe("json helpers", function()
  it("null is unique, prints as null and is shared with lumu.yaml", function()
    assert.are.equal("null", tostring(json.null))
    assert.is_true(json.is_null(json.null))
    assert.is_false(json.is_null(nil))
    assert.are.equal(require("lumu.yaml").null, json.null)
    assert.are.equal(require("lumu.yaml").array_mt, json.array_mt)
  end)

  it("array/object/ordered mark tables and refuse foreign metatables", function()
    local t = {}
    assert.are.equal(t, json.array(t))
    assert.are.equal(json.array_mt, getmetatable(t))
    assert.are.equal(t, json.object(t)) -- a marker may replace a marker
    assert.are.equal(json.object_mt, getmetatable(t))
    assert.error_matches(function() json.array(setmetatable({}, {})) end, "already has a metatable")
    assert.error_matches(function() json.object(5) end, "table expected")
    assert.error_matches(function() json.ordered({}, { 1 }) end, "string expected")
  end)

  it("kind tells what a value encodes as", function()
    assert.are.equal("null", json.kind(json.null))
    assert.are.equal("array", json.kind({ 1 }))
    assert.are.equal("object", json.kind({}))
    assert.are.equal("array", json.kind(json.array()))
    assert.are.equal("object", json.kind(json.decode('{"1":1}')))
    assert.are.equal("number", json.kind(1))
    assert.is_nil(json.kind(print))
    assert.is_nil(json.kind(0 / 0))
  end)
end)

describe("json with the CloudFormation schemas", function()
  local shared = os.getenv("LUMU_SHARED")
  local function readable(p)
    local f = p and io.open(p, "rb")
    if f then f:close() end
    return f ~= nil
  end
  if not readable(shared and (shared .. "/cfn/schemas/aws-s3-bucket.json")) then
    pending("skipped: ../shared/cfn/schemas not found (set LUMU_SHARED)")
    return
  end
  it("decodes and round-trips registry schemas", function()
    for _, name in ipairs({ "aws-s3-bucket", "aws-ec2-instance", "aws-iam-role", "aws-lambda-function",
      "aws-ec2-subnet", "aws-events-eventbus" }) do
      local f = io.open(shared .. "/cfn/schemas/" .. name .. ".json", "rb")
      if f then
        local text = f:read("a")
        f:close()
        local v, err = json.decode(text)
        assert.is_nil(err)
        assert.is_string(v.typeName)
        local again = json.decode(json.encode(v))
        assert.are.same(v, again)
        assert.are.equal(json.encode(v), json.encode(again))
        assert.are.same(v, json.decode(json.encode(v, { pretty = true })))
      end
    end
  end)
end)
