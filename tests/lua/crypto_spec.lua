local crypto = require "lumu.crypto"
local hex, unhex = crypto.hex, crypto.unhex

describe("lumu.crypto digests", function()
  it("sha256 matches the NIST vectors", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex(crypto.sha256("")))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex(crypto.sha256("abc")))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      hex(crypto.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
    assert.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      hex(crypto.sha256(string.rep("a", 1000000))))
  end)

  it("returns raw bytes of the right length", function()
    assert.equal(32, #crypto.sha256("x"))
    assert.equal(20, #crypto.sha1("x"))
    assert.equal(16, #crypto.md5("x"))
  end)

  it("sha1 and md5 match the published vectors", function()
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", hex(crypto.sha1("abc")))
    assert.equal("da39a3ee5e6b4b0d3255bfef95601890afd80709", hex(crypto.sha1("")))
    assert.equal("d41d8cd98f00b204e9800998ecf8427e", hex(crypto.md5("")))
    assert.equal("900150983cd24fb0d6963f7d28e17f72", hex(crypto.md5("abc")))
    assert.equal("f96b697d7cb7938d525a2f31aaf161d0", hex(crypto.md5("message digest")))
  end)

  it("digest(alg, s) accepts other OpenSSL digests", function()
    assert.equal(crypto.sha256("abc"), crypto.digest("sha256", "abc"))
    assert.equal("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" ..
      "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f", hex(crypto.digest("sha512", "abc")))
    assert.equal("3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
      hex(crypto.digest("sha3-256", "abc")))
  end)

  it("hashes binary data with NUL bytes", function()
    assert.not_equal(crypto.sha256("a\0b"), crypto.sha256("a\0c"))
    assert.not_equal(crypto.sha256("a\0b"), crypto.sha256("a"))
  end)

  it("raises on an unknown algorithm or a non-string", function()
    assert.error_matches(function() crypto.digest("sha257", "x") end, "unknown digest 'sha257'")
    assert.error_matches(function() crypto.sha256(nil) end, "string expected")
    assert.error_matches(function() crypto.sha256({}) end, "string expected")
    assert.error_matches(function() crypto.hmac("nope", "k", "m") end, "unknown digest")
  end)
end)

describe("lumu.crypto HMAC (RFC 4231)", function()
  local cases = {
    { string.rep("\x0b", 20), "Hi There",
      "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", "87aa7cdea5ef619d4ff0b4241a1d6cb0" },
    { "Jefe", "what do ya want for nothing?",
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", "164b7a7bfcf819e2e395fbe73b56e0a3" },
    { string.rep("\xaa", 20), string.rep("\xdd", 50),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", "fa73b0089d56a284efb0f0756c890be9" },
    { unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), string.rep("\xcd", 50),
      "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", "b0ba465637458c6990e5a8c5f61d4af7" },
    { string.rep("\xaa", 131), "Test Using Larger Than Block-Size Key - Hash Key First",
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", "80b24263c7c1a3ebb71493c1dd7be8b4" },
    { string.rep("\xaa", 131), "This is a test using a larger than block-size key and a larger than block-size " ..
      "data. The key needs to be hashed before being used by the HMAC algorithm.",
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", "e37b6a775dc87dbaa4dfa9f96e5e3ffd" },
  }

  it("hmac_sha256 matches test cases 1-4, 6 and 7", function()
    for _, c in ipairs(cases) do
      assert.equal(c[3], hex(crypto.hmac_sha256(c[1], c[2])))
    end
  end)

  it("hmac(alg, ...) matches the SHA-512 column", function()
    for _, c in ipairs(cases) do
      assert.equal(c[4], hex(crypto.hmac("sha512", c[1], c[2])):sub(1, 32))
    end
  end)

  it("accepts an empty key and message", function()
    assert.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
      hex(crypto.hmac_sha256("", "")))
  end)

  it("chains like SigV4 key derivation", function()
    -- kSigning from the AWS SigV4 documentation example
    local k = crypto.hmac_sha256("AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215")
    k = crypto.hmac_sha256(k, "us-east-1")
    k = crypto.hmac_sha256(k, "iam")
    k = crypto.hmac_sha256(k, "aws4_request")
    assert.equal("f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d", hex(k))
  end)

  it("raises on missing arguments", function()
    assert.error_matches(function() crypto.hmac_sha256("k") end, "string expected")
    assert.error_matches(function() crypto.hmac_sha256(nil, "m") end, "string expected")
  end)
end)

describe("lumu.crypto.equals", function()
  it("compares byte strings", function()
    assert.is_true(crypto.equals("abc", "abc"))
    assert.is_true(crypto.equals("", ""))
    assert.is_false(crypto.equals("abc", "abd"))
    assert.is_false(crypto.equals("abc", "ab"))
    assert.is_false(crypto.equals("a\0", "a\1"))
  end)
end)

describe("lumu.crypto hex", function()
  it("encodes lowercase and round-trips every byte", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    local h = hex(all)
    assert.equal(512, #h)
    assert.is_nil(h:find("[^0-9a-f]"))
    assert.equal(all, unhex(h))
    assert.equal("00ff10", hex("\0\255\16"))
    assert.equal("", hex(""))
  end)

  it("unhex accepts uppercase", function()
    assert.equal("\xde\xad\xbe\xef", unhex("DEADbeef"))
    assert.equal("", unhex(""))
  end)

  it("unhex rejects odd length and bad characters", function()
    local v, err = unhex("abc")
    assert.is_nil(v)
    assert.matches("odd length", err)
    v, err = unhex("zz")
    assert.is_nil(v)
    assert.matches("bad character at position 1", err)
    v, err = unhex("0g")
    assert.is_nil(v)
    assert.matches("position 2", err)
    assert.is_nil((unhex(" 00")))
    assert.is_nil((unhex("00\0")))
  end)
end)

describe("lumu.crypto base64 (RFC 4648)", function()
  local vectors = { { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" } }

  it("encodes the RFC 4648 section 10 vectors", function()
    for _, v in ipairs(vectors) do assert.equal(v[2], crypto.base64_encode(v[1])) end
  end)

  it("decodes the RFC 4648 section 10 vectors", function()
    for _, v in ipairs(vectors) do assert.equal(v[1], crypto.base64_decode(v[2])) end
  end)

  it("round-trips binary data of every length up to 64", function()
    local s = ""
    for i = 0, 64 do
      assert.equal(s, crypto.base64_decode(crypto.base64_encode(s)))
      s = s .. string.char((i * 37 + 11) % 256)
    end
    assert.equal("+/8=", crypto.base64_encode("\251\255"))
  end)

  it("round-trips a large random string", function()
    local s = crypto.random_bytes(100000)
    local e = crypto.base64_encode(s)
    assert.equal(133336, #e)
    assert.equal(s, crypto.base64_decode(e))
  end)

  it("rejects bad characters, whitespace and bad padding", function()
    local bad = {
      { "Zm9v\n", "multiple of 4" }, { "Zm9", "multiple of 4" }, { "Zg", "multiple of 4" },
      { "Zm9v YmFy", "multiple of 4" }, { "Zm-v", "bad character at position 3" },
      { "Zm9_", "bad character" }, { "Zm9v\0\0\0\0", "bad character" },
      { "Zg=a", "misplaced padding at position 3" }, { "=Zm9", "misplaced padding at position 1" },
      { "Zm=vYmFy", "misplaced padding" }, { "Z===", "misplaced padding" }, { "====", "misplaced padding" },
      { "Zh==", "non%-zero padding bits" }, { "Zm9=", "non%-zero padding bits" },
    }
    for _, b in ipairs(bad) do
      local v, err = crypto.base64_decode(b[1])
      assert.is_nil(v)
      assert.matches(b[2], err)
    end
  end)

  it("raises on non-strings", function()
    assert.error_matches(function() crypto.base64_encode(nil) end, "string expected")
    assert.error_matches(function() crypto.base64_decode(false) end, "string expected")
  end)
end)

describe("lumu.crypto.random_bytes", function()
  it("returns n distinct random bytes", function()
    local a, b = crypto.random_bytes(32), crypto.random_bytes(32)
    assert.equal(32, #a)
    assert.not_equal(a, b)
    assert.equal("", crypto.random_bytes(0))
  end)

  it("rejects negative and non-integer sizes", function()
    assert.error_matches(function() crypto.random_bytes(-1) end, "out of range")
    assert.error_matches(function() crypto.random_bytes(1.5) end, "number has no integer representation")
    assert.error_matches(function() crypto.random_bytes(2 ^ 40) end, "out of range")
  end)
end)

describe("lumu.crypto.hasher", function()
  it("matches the one-shot digest across chained updates", function()
    local h = crypto.hasher("sha256")
    assert.equal(h, h:update("ab"))
    local d = h:update("c"):update(""):final()
    assert.equal(crypto.sha256("abc"), d)
  end)

  it("hashes large input incrementally", function()
    local h = crypto.hasher("sha256")
    local chunk = string.rep("a", 1000)
    for _ = 1, 1000 do h:update(chunk) end
    assert.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", hex(h:final()))
  end)

  it("supports other algorithms", function()
    assert.equal(crypto.md5("message digest"), crypto.hasher("md5"):update("message "):update("digest"):final())
  end)

  it("raises when used after final", function()
    local h = crypto.hasher("sha1")
    h:final()
    assert.error_matches(function() h:update("x") end, "finalised hasher")
    assert.error_matches(function() h:final() end, "finalised hasher")
    assert.matches("finalised", tostring(h))
  end)

  it("frees its context when closed or collected", function()
    do
      local h <close> = crypto.hasher("sha256")
      h:update("x")
      assert.matches("^lumu.crypto.Hasher %(SHA2?%-?256%)", tostring(h))
    end
    for _ = 1, 100 do crypto.hasher("sha512"):update("x") end
    collectgarbage()
    local h = crypto.hasher("sha256")
    getmetatable(h).__close(h)
    getmetatable(h).__gc(h) -- idempotent
    assert.error_matches(function() h:update("y") end, "finalised hasher")
  end)

  it("rejects bad arguments", function()
    assert.error_matches(function() crypto.hasher("whirlpool9") end, "unknown digest")
    assert.error_matches(function() crypto.hasher("sha256"):update(nil) end, "string expected")
    assert.error_matches(function() crypto.hasher("sha256").update({}, "x") end, "lumu.crypto.Hasher expected")
  end)
end)
