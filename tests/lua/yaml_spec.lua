-- Specs of lumu.yaml: core-schema scalars, anchors/merges, CloudFormation
-- tags, positions, errors with name:line:col, hostile input, dump quoting and
-- round-trips.
local yaml = require "lumu.yaml"
local json = require "lumu.json"
local deep_equal = require("lumu.test").deep_equal

local null = json.null

-- load that must succeed
local function load(s, opts)
  local v, err = yaml.load(s, opts)
  assert.is_nil(err)
  return v
end

-- load that must fail; returns the message
local function load_err(s, opts)
  local v, err = yaml.load(s, opts)
  assert.is_nil(v)
  assert.is_string(err)
  return err
end

describe("yaml.load scalars", function()
  it("resolves plain scalars with the core schema", function()
    local cases = {
      { "~", null }, { "null", null }, { "Null", null }, { "NULL", null }, { "", null },
      { "true", true }, { "True", true }, { "TRUE", true }, { "false", false }, { "FALSE", false },
      { "0", 0 }, { "42", 42 }, { "-17", -17 }, { "+3", 3 }, { "0x1F", 31 }, { "0o17", 15 },
      { "9223372036854775807", math.maxinteger }, { "-9223372036854775808", math.mininteger },
      { "1.5", 1.5 }, { "-.5", -0.5 }, { "1.", 1.0 }, { "1e3", 1000.0 }, { "2.5E-3", 0.0025 },
      { ".inf", math.huge }, { "-.Inf", -math.huge }, { "+.INF", math.huge },
      { "yes", "yes" }, { "no", "no" }, { "on", "on" }, { "0123", "0123" }, { "012345678901", "012345678901" },
      { "2010-09-09", "2010-09-09" }, { "1_000", "1_000" }, { "0x", "0x" }, { "0xZZ", "0xZZ" },
      { "1.2.3", "1.2.3" }, { "e3", "e3" }, { ".", "." }, { "hello world", "hello world" },
      { "tRUE", "tRUE" }, { "nULL", "nULL" }, { "0o8", "0o8" }, { "-0x1", "-0x1" },
    }
    for _, c in ipairs(cases) do
      local v = load("v: " .. c[1]).v
      assert.are.equal(c[2], v)
      assert.are.equal(math.type(c[2]), math.type(v))
    end
    local nan = load("v: .nan").v
    assert.is_true(nan ~= nan)
    assert.are.equal("float", math.type(load("v: 99999999999999999999").v))
  end)

  it("keeps quoted and block scalars strings", function()
    local v = load([[
a: "true"
b: '1'
c: "null"
d: ''
e: |
  line 1
  line 2
f: >-
  folded
  text
g: "\t\u00e9\x41"
]])
    assert.are.same({ a = "true", b = "1", c = "null", d = "", e = "line 1\nline 2\n",
      f = "folded text", g = "\téA" }, v)
  end)

  it("honours standard tags and rejects values that do not fit", function()
    assert.are.same({ a = "1", b = 2, c = 3.0, d = true, e = null, f = "x", g = { 1 }, h = { k = "v" } },
      load("{a: !!str 1, b: !!int 2, c: !!float 3, d: !!bool true, e: !!null ~, f: ! x, "
        .. "g: !!seq [1], h: !!map {k: v}}"))
    assert.are.equal("<string>:1:4: invalid !!int value '1.5'", load_err("x: !!int 1.5"))
    assert.are.equal("<string>:1:4: invalid !!bool value 'yes'", load_err("x: !!bool yes"))
    assert.are.equal("<string>:1:4: unknown tag '!!binary'", load_err("x: !!binary aGk="))
    assert.are.equal("<string>:1:4: tag '!!map' on a sequence", load_err("x: !!map [1]"))
  end)

  it("keeps mapping keys as written, as strings", function()
    local v = load("1: a\ntrue: b\n~: c\n0x10: d\n'q': e\n")
    assert.are.same({ ["1"] = "a", ["true"] = "b", ["~"] = "c", ["0x10"] = "d", q = "e" }, v)
  end)
end)

describe("yaml.load structure", function()
  it("marks mappings and sequences like lumu.json", function()
    local v = load("a: []\nb: {}\nc: [1, {d: []}]\n")
    assert.are.equal(json.object_mt, getmetatable(v))
    assert.are.equal(json.array_mt, getmetatable(v.a))
    assert.are.equal(json.object_mt, getmetatable(v.b))
    assert.are.equal('{"a":[],"b":{},"c":[1,{"d":[]}]}', json.encode(v))
    assert.are.same({ null, 1, null }, load("- ~\n- 1\n-\n"))
  end)

  it("returns the first document, or all of them", function()
    assert.are.equal(1, load("--- 1\n--- 2\n"))
    local docs = load("--- 1\n--- [a]\n---\n", { all = true })
    assert.are.same({ 1, { "a" }, null }, docs)
    assert.are.equal(json.array_mt, getmetatable(docs))
    assert.are.equal(null, load(""))
    assert.are.equal(null, load("# only a comment\n"))
    assert.are.same({}, load("", { all = true }))
  end)

  it("shares anchored values through aliases", function()
    local v = load("base: &b {x: 1}\nuse: *b\nlist: [&s hi, *s]\n")
    assert.are.equal(v.base, v.use)
    assert.are.same({ "hi", "hi" }, v.list)
  end)

  it("merges << keys: own keys win, then earlier sources", function()
    local v = load([[
defaults: &d {a: 1, b: 1}
extra: &e {b: 2, c: 2}
one: {<<: *d, b: 9}
two:
  <<: [*e, *d]
  z: 0
inline:
  <<: {k: v}
]])
    assert.are.same({ a = 1, b = 9 }, v.one)
    assert.are.same({ a = 1, b = 2, c = 2, z = 0 }, v.two)
    assert.are.same({ k = "v" }, v.inline)
    assert.are.same({ a = 1, b = 1 }, v.defaults) -- sources are not modified
    assert.are.equal("<string>:1:5: merge key '<<' needs a mapping or a sequence of mappings",
      load_err("x: {<<: 5}"))
    assert.matches("needs a mapping", load_err("a: &a [1]\nx: {<<: [*a]}"))
    assert.are.same({ ["<<"] = 1 }, load("'<<': 1")) -- a quoted << is a plain key
  end)

  it("reports undefined aliases, duplicate and complex keys", function()
    assert.are.equal("<string>:1:4: undefined alias '*nope'", load_err("a: *nope"))
    assert.are.equal("<string>:1:8: undefined alias '*a'", load_err("a: &a [*a]")) -- no recursion
    assert.are.equal("<string>:3:1: duplicate key 'a'", load_err("a: 1\nb: 2\na: 3\n"))
    assert.are.equal("<string>:1:1: only scalars are supported as mapping keys", load_err("[a]: 1"))
    assert.are.equal("<string>:1:3: only scalars are supported as mapping keys", load_err("? {a: 1}\n: x"))
  end)
end)

describe("yaml.load CloudFormation tags", function()
  it("turns short forms into long forms", function()
    local v = load([==[
a: !Ref Bucket
b: !GetAtt Bucket.Arn
c: !GetAtt DB.Endpoint.Address
d: !GetAtt [Bucket, Arn]
e: !Sub '${AWS::StackName}-x'
f: !Sub ['${A}', {A: !Ref P}]
g: !Join [':', [a, b]]
h: !Select [0, !GetAZs '']
i: !If [IsProd, !Ref A, !Ref 'AWS::NoValue']
j: !Equals [!Ref Env, prod]
k: !And [!Condition A, !Not [!Condition B]]
l: !Or [!Condition A, !Condition B]
m: !ImportValue shared-vpc
n: !FindInMap [Map, !Ref 'AWS::Region', AMI]
o: !Base64 {"Fn::Sub": "x"}
p: !Cidr [!GetAtt Vpc.CidrBlock, 6, 5]
q: !Split [',', !ImportValue list]
r: !Transform {Name: AWS::Include, Parameters: {Location: s3://b/k}}
s: !ToJsonString {a: 1}
t: !Length [1, 2]
u: !Condition IsProd
v: !GetAZs
]==])
    assert.are.same({
      a = { Ref = "Bucket" },
      b = { ["Fn::GetAtt"] = { "Bucket", "Arn" } },
      c = { ["Fn::GetAtt"] = { "DB", "Endpoint.Address" } },
      d = { ["Fn::GetAtt"] = { "Bucket", "Arn" } },
      e = { ["Fn::Sub"] = "${AWS::StackName}-x" },
      f = { ["Fn::Sub"] = { "${A}", { A = { Ref = "P" } } } },
      g = { ["Fn::Join"] = { ":", { "a", "b" } } },
      h = { ["Fn::Select"] = { 0, { ["Fn::GetAZs"] = "" } } },
      i = { ["Fn::If"] = { "IsProd", { Ref = "A" }, { Ref = "AWS::NoValue" } } },
      j = { ["Fn::Equals"] = { { Ref = "Env" }, "prod" } },
      k = { ["Fn::And"] = { { Condition = "A" }, { ["Fn::Not"] = { { Condition = "B" } } } } },
      l = { ["Fn::Or"] = { { Condition = "A" }, { Condition = "B" } } },
      m = { ["Fn::ImportValue"] = "shared-vpc" },
      n = { ["Fn::FindInMap"] = { "Map", { Ref = "AWS::Region" }, "AMI" } },
      o = { ["Fn::Base64"] = { ["Fn::Sub"] = "x" } },
      p = { ["Fn::Cidr"] = { { ["Fn::GetAtt"] = { "Vpc", "CidrBlock" } }, 6, 5 } },
      q = { ["Fn::Split"] = { ",", { ["Fn::ImportValue"] = "list" } } },
      r = { ["Fn::Transform"] = { Name = "AWS::Include", Parameters = { Location = "s3://b/k" } } },
      s = { ["Fn::ToJsonString"] = { a = 1 } },
      t = { ["Fn::Length"] = { 1, 2 } },
      u = { Condition = "IsProd" },
      v = { ["Fn::GetAZs"] = "" },
    }, v)
    assert.are.equal(json.object_mt, getmetatable(v.a))
    assert.are.equal(json.array_mt, getmetatable(v.b["Fn::GetAtt"]))
  end)

  it("keeps tagged scalars strings", function()
    assert.are.same({ Ref = "true" }, load("x: !Ref true").x)
    assert.are.same({ ["Fn::Sub"] = "123" }, load("x: !Sub 123").x)
  end)

  it("rejects unknown tags and misused short forms with positions", function()
    assert.are.equal("t.yaml:2:8: unknown tag '!GetAttr'",
      load_err("a: 1\nb: [1, !GetAttr x.y]\n", { filename = "t.yaml" }))
    assert.are.equal("<string>:1:4: !Ref expects a scalar", load_err("x: !Ref [a]"))
    assert.are.equal("<string>:1:4: !Condition expects a scalar", load_err("x: !Condition {a: 1}"))
    assert.are.equal("<string>:1:4: !GetAtt expects 'Resource.Attribute', got 'Foo'", load_err("x: !GetAtt Foo"))
    assert.are.equal("<string>:1:4: tag '!GetAtt' on a mapping", load_err("x: !GetAtt {a: b}"))
    assert.are.equal("<string>:1:1: tag '!Ref' is not allowed on a mapping key", load_err("!Ref a: 1"))
  end)
end)

describe("yaml.load positions", function()
  it("records 1-based line/col for tables, keys and items", function()
    local src = "top: 1\nmap:\n  key: v\n  list:\n    - a\n    - {x: 1}\n"
    local v, pos = yaml.load(src, { positions = true })
    assert.are.same({ line = 1, col = 1 }, pos[v].keys.top)
    assert.are.same({ line = 2, col = 1 }, pos[v].keys.map)
    assert.are.same({ line = 3, col = 3 }, pos[v.map].keys.key)
    assert.are.same({ line = 4, col = 3 }, pos[v.map].keys.list)
    assert.are.same({ line = 5, col = 7 }, pos[v.map.list].items[1]) -- where the value starts
    assert.are.same({ line = 6, col = 7 }, pos[v.map.list].items[2])
    assert.are.same({ line = 6, col = 8 }, pos[v.map.list[2]].keys.x)
    assert.are.equal(3, pos[v.map].line)
    assert.are.equal(3, pos[v.map].col)
    assert.are.equal("k", getmetatable(pos).__mode)
  end)

  it("covers tag wrappers, merged keys and every document", function()
    local v, pos = yaml.load("a: !Ref X\nb: &d {k: 1}\nc:\n  <<: *d\n--- [1]\n", { positions = true, all = true })
    local d1 = v[1]
    assert.are.same({ line = 1, col = 4 }, pos[d1.a].keys.Ref)
    assert.are.same({ line = 2, col = 8 }, pos[d1.c].keys.k) -- where the merged key was written
    assert.are.same({ line = 5, col = 6 }, pos[v[2]].items[1])
  end)

  it("returns only the value without opts.positions", function()
    assert.are.equal(1, select("#", yaml.load("a: 1")))
  end)
end)

describe("yaml.load errors and hostile input", function()
  it("reports syntax errors as name:line:col", function()
    assert.are.equal("<string>:2:4: mapping values are not allowed in this context",
      load_err("a: 1\n  b: 2\n"))
    assert.are.equal("cfg.yml:1:5: mapping values are not allowed in this context",
      load_err("a: b: c", { filename = "cfg.yml" }))
    assert.matches("^<string>:3:1: did not find expected ',' or ']'", load_err("a: 1\nb: [1, 2\n"))
    assert.matches("^<string>:1:5: found unknown escape character", load_err('a: "\\q"'))
    assert.matches("^<string>:2:1: found a tab character", load_err("a: 1\n\tb: 2\n"))
  end)

  it("reports invalid UTF-8 with its position", function()
    assert.are.equal("<string>:2:4: invalid leading UTF-8 octet (byte 0xFF)", load_err("a: 1\nb: \xff\n"))
  end)

  it("limits nesting to 1000 levels without crashing", function()
    assert.are.equal("<string>:1:1001: nesting deeper than 1000 levels", load_err(string.rep("[", 100000)))
    assert.matches("nesting deeper than 1000 levels", load_err(string.rep("- ", 100000)))
    assert.matches("nesting deeper than 1000 levels", load_err(string.rep("{a: ", 100000)))
    assert.matches("nesting deeper than 1000 levels", load_err(string.rep("a:\n", 1) .. string.rep(" ", 0)
      .. table.concat((function()
        local t = {}
        for i = 1, 1500 do t[i] = string.rep(" ", i) .. "a:\n" end
        return t
      end)())))
    local ok = string.rep("[", 1000) .. string.rep("]", 1000)
    assert.is_table(load(ok))
    assert.are.equal(ok, json.encode(load(ok)))
  end)

  it("counts nesting through aliases", function()
    local deep = string.rep("[", 600) .. string.rep("]", 600)
    assert.is_table(load("a: &a " .. deep .. "\n"))
    assert.matches("nesting deeper than 1000 levels %(through alias '%*a'%)",
      load_err("a: &a " .. deep .. "\nb: " .. string.rep("[", 500) .. "*a" .. string.rep("]", 500) .. "\n"))
  end)

  it("stops alias explosions (billion laughs)", function()
    local lines = { 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]' }
    local names = "abcdefghi"
    for i = 2, #names do
      local n, p = names:sub(i, i), names:sub(i - 1, i - 1)
      lines[i] = string.format("%s: &%s [%s]", n, n, string.rep("*" .. p, 9, ","))
    end
    local err = load_err(table.concat(lines, "\n"))
    assert.matches("^<string>:%d+:%d+: aliases expand the document beyond 1000000 nodes", err)
    -- a reasonable number of aliases is fine
    assert.is_table(load(table.concat(lines, "\n", 1, 4)))
  end)

  it("never crashes on garbage", function()
    local seed = 12345
    local function rnd(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    local alphabet = "ab:-[]{}&*!|>'\"#%@`,? \n\t\\0x.~<"
    for _ = 1, 300 do
      local t = {}
      for j = 1, rnd(60) + 1 do
        local k = rnd(#alphabet) + 1
        t[j] = alphabet:sub(k, k)
      end
      local v, err = yaml.load(table.concat(t))
      assert.is_true(v ~= nil or type(err) == "string")
    end
  end)

  it("checks its arguments and options", function()
    assert.error_matches(function() yaml.load(nil) end, "string expected")
    assert.error_matches(function() yaml.load("a", 1) end, "table expected")
    assert.error_matches(function() yaml.load("a", { all = "yes" }) end, "bad option 'all'")
    assert.error_matches(function() yaml.load("a", { filename = 3 }) end, "bad option 'filename'")
  end)

  it("loads files, naming them in errors", function()
    local name = os.tmpname()
    local f = assert(io.open(name, "w"))
    f:write("a: [1,\n")
    f:close()
    local v, err = yaml.load_file(name)
    os.remove(name)
    assert.is_nil(v)
    assert.are.equal(name .. ":", err:sub(1, #name + 1))
    local v2, err2 = yaml.load_file(name .. ".missing")
    assert.is_nil(v2)
    assert.matches("missing", err2)
  end)
end)

describe("yaml.dump", function()
  it("writes scalars", function()
    assert.are.equal("null\n", yaml.dump(null))
    assert.are.equal("true\n", yaml.dump(true))
    assert.are.equal("42\n", yaml.dump(42))
    assert.are.equal("3.0\n", yaml.dump(3.0))
    assert.are.equal("0.1\n", yaml.dump(0.1))
    assert.are.equal("1.0e+20\n", yaml.dump(1e20))
    assert.are.equal(".nan\n", yaml.dump(0 / 0))
    assert.are.equal("-.inf\n", yaml.dump(-math.huge))
    assert.are.equal("hello\n", yaml.dump("hello"))
  end)

  it("writes block style with sorted keys and [] / {} markers", function()
    assert.are.equal("a:\n- 1\n- x: []\n  'y': {}\nb: c\n", -- y is a YAML 1.1 boolean
      yaml.dump({ b = "c", a = { 1, { y = json.object(), x = json.array() } } }))
    assert.are.equal("{}\n", yaml.dump({}))
    assert.are.equal("a:\n    b: 1\n", yaml.dump({ a = { b = 1 } }, { indent = 4 }))
  end)

  it("honours json.ordered", function()
    local t = json.ordered({ Resources = {}, AWSTemplateFormatVersion = "2010-09-09", A = 1 },
      { "AWSTemplateFormatVersion", "Resources" })
    assert.are.equal("AWSTemplateFormatVersion: '2010-09-09'\nResources: {}\nA: 1\n", yaml.dump(t))
  end)

  it("quotes strings that would read back as something else", function()
    local quoted = { "true", "False", "1", "-1", "1.5", ".5", "1e3", "0x1F", "0o7", "null", "~", "",
      "yes", "No", "on", "OFF", "y", "0123", ".inf", "-.inf", ".nan", "<<", "10.0.0.0/16", "2010-09-09" }
    for _, s in ipairs(quoted) do
      local out = yaml.dump({ k = s })
      assert.matches("^k: '", out)
      assert.are.same({ k = s }, load(out))
    end
    local tricky = { " lead", "trail ", "a: b", "a #b", "#c", "- x", "!Ref x", "*a", "&a", "[a]", "{a}",
      "? a", "%x", "@x", "`x", "|", ">", "'", '"', "a\tb", "a\0b", "\1", "é😀", "---", "...",
      "line\nbreak", "end\n", "\n", "  two\nlines  ", "a\r\nb", "x\u{2028}y" }
    for _, s in ipairs(tricky) do
      assert.are.same({ k = s }, load(yaml.dump({ k = s })))
      assert.are.same({ [s] = 1 }, load(yaml.dump({ [s] = 1 })))
    end
    assert.are.equal("k: |-\n  a\n  b\n", yaml.dump({ k = "a\nb" }))
    assert.are.equal("k: a,b c\n", yaml.dump({ k = "a,b c" }))
  end)

  it("writes CloudFormation short forms with cfn_short", function()
    local tpl = {
      Resources = {
        B = {
          Type = "AWS::S3::Bucket",
          Properties = {
            Name = { ["Fn::Sub"] = "${AWS::StackName}-b" },
            Arn = { ["Fn::GetAtt"] = { "Q", "Arn" } },
            Ref = { Ref = "P" },
            Azs = { ["Fn::Select"] = { 0, { ["Fn::GetAZs"] = "" } } },
            Data = { ["Fn::Base64"] = { ["Fn::Sub"] = "x" } },
            NotShort = { Ref = { "a" } },
          },
        },
      },
    }
    local out = yaml.dump(tpl, { cfn_short = true })
    assert.are.equal([[
Resources:
  B:
    Properties:
      Arn: !GetAtt Q.Arn
      Azs: !Select
      - 0
      - !GetAZs ''
      Data: !Base64
        Fn::Sub: x
      Name: !Sub ${AWS::StackName}-b
      NotShort:
        Ref:
        - a
      Ref: !Ref P
    Type: AWS::S3::Bucket
]], out)
    assert.are.same(tpl, load(out))
    assert.is_nil(yaml.dump(tpl):find("!", 1, true)) -- long forms without the option
  end)

  it("raises with the key path", function()
    assert.error_matches(function() yaml.dump({ a = { b = print } }) end,
      "yaml.dump: a.b: cannot encode a function", 1, true)
    local t = {}
    t[1] = t
    assert.error_matches(function() yaml.dump(t) end, "yaml.dump: [1]: cycle detected", 1, true)
    assert.error_matches(function() yaml.dump({ x = "\xff" }) end, "yaml.dump: x: invalid UTF-8", 1, true)
    assert.error_matches(function() yaml.dump({ [1] = 1, [5] = 2 }) end, "sparse array", 1, true)
    assert.error_matches(function() yaml.dump(1, { indent = 1 }) end, "bad option 'indent'")
  end)

  it("limits nesting depth", function()
    local deep = {}
    local cur = deep
    for _ = 1, 5000 do
      cur.x = {}
      cur = cur.x
    end
    assert.error_matches(function() yaml.dump(deep) end, "nesting deeper than 1000 levels", 1, true)
  end)
end)

describe("yaml round-trips", function()
  it("load(dump(v)) equals v", function()
    local values = {
      null, true, 0, -1, math.maxinteger, math.mininteger, 0.5, -0.0, 1e-300, 1 / 3, "", "x",
      { 1, 2, 3 }, { a = { b = { c = {} } } }, { json.array(), json.object(), null },
      { list = { { name = "a", tags = { "x", "y" } }, { name = "b", tags = json.array() } } },
      { ["key with spaces"] = "value: with colon", ["#"] = "#", ["-"] = { "-" } },
      { multi = "first\n  indented\nlast\n\n", crlf = "a\r\n", tabs = "\t\tx" },
      { num_strings = { "1", "1.0", "0x10", "+5", "1e5", ".5", "007" } },
      { unicode = "日本語 ✓", emoji = { "😀" } },
    }
    for _, v in ipairs(values) do
      local out = yaml.dump(v)
      local back = load(out)
      assert.is_true(deep_equal(v, back), out)
      assert.is_true(deep_equal(v, load(yaml.dump(v, { cfn_short = true }))))
    end
  end)

  it("round-trips generated documents", function()
    local seed = 42
    local function rnd(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    local atoms = { "a", "true", "1", "", " ", "x: y", "- z", "null", "é", "\n", "0.5", "Ref", "Fn::Sub" }
    local function gen(depth)
      local k = rnd(depth > 3 and 5 or 8)
      if k == 0 then return rnd(1000) - 500 end
      if k == 1 then return (rnd(10000) - 5000) / 64 end
      if k == 2 then return rnd(2) == 0 end
      if k == 3 then return null end
      if k == 4 then return atoms[rnd(#atoms) + 1] end
      if k == 5 then
        local t = json.array()
        for i = 1, rnd(4) do t[i] = gen(depth + 1) end
        return t
      end
      local t = json.object()
      for _ = 1, rnd(4) do t[atoms[rnd(#atoms) + 1]] = gen(depth + 1) end
      return t
    end
    for _ = 1, 200 do
      local v = gen(0)
      assert.is_true(deep_equal(v, load(yaml.dump(v))))
      assert.is_true(deep_equal(v, load(yaml.dump(v, { cfn_short = true }))))
      assert.are.equal(json.encode(v), json.encode(load(yaml.dump(v))))
    end
  end)

  it("converts YAML to JSON keeping [] and {}", function()
    assert.are.equal('{"a":[],"b":{},"c":null,"d":[{"e":[]}]}',
      json.encode(load("a: []\nb: {}\nc:\nd:\n- e: []\n")))
    assert.are.same(load("x: [1, {y: []}]"), json.decode(json.encode(load("x: [1, {y: []}]"))))
  end)
end)

describe("yaml with the shared corpus", function()
  local shared = os.getenv("LUMU_SHARED")
  local list = shared and io.popen("find '" .. shared .. "/corpus' '" .. shared
    .. "/cfn' \\( -name '*.yaml' -o -name '*.yml' \\) -type f 2>/dev/null | sort")
  local files = {}
  if list then
    for line in list:lines() do files[#files + 1] = line end
    list:close()
  end
  if #files == 0 then
    pending("skipped: no YAML files under ../shared/corpus or ../shared/cfn (set LUMU_SHARED)")
    return
  end
  it("loads every CloudFormation/mu YAML file (" .. #files .. " files) and round-trips it", function()
    local loaded = 0
    for _, path in ipairs(files) do
      local f = assert(io.open(path, "rb"))
      local text = f:read("a")
      f:close()
      -- Go-templated files ({{ .Namespace }} as a key) are not YAML until rendered
      if not text:find("{{", 1, true) then
        local docs, err = yaml.load(text, { all = true, filename = path })
        assert.is_nil(err)
        assert.is_true(deep_equal(docs, load(yaml.dump(docs))), path)
        assert.is_true(deep_equal(docs, load(yaml.dump(docs, { cfn_short = true }))), path)
        loaded = loaded + 1
      end
    end
    assert.is_true(loaded > 0)
  end)
end)
