--- Hashes, HMAC, hex/base64 and random bytes (OpenSSL EVP).
--
-- Digests and MACs are returned as raw bytes; wrap them in crypto.hex() for
-- the usual text form.  `alg` is an OpenSSL digest name such as "sha256",
-- "sha1", "md5", "sha512", "sha3-256"; an unknown name or a non-string
-- argument raises (misuse).  Malformed hex/base64 input returns nil, err.
-- libcrypto.so.3 is loaded on the first digest/MAC/random call (lua/lazylib.h);
-- without it those raise "libcrypto.so.3 not available: <why>"; hex and base64
-- never need it.
--
-- crypto.sha256(s), crypto.sha1(s), crypto.md5(s) -> raw digest
-- crypto.digest(alg, s) -> raw digest
-- crypto.hmac_sha256(key, msg) -> raw 32-byte MAC
-- crypto.hmac(alg, key, msg) -> raw MAC
-- crypto.equals(a, b) -> boolean
--   Comparison whose time does not depend on where a and b differ (use it to
--   check MACs/signatures).
-- crypto.hex(s) -> lowercase hex string
-- crypto.unhex(hex) -> bytes | nil, err
--   Upper- or lowercase digits; odd length or a non-hex character is an error.
-- crypto.base64_encode(s) -> string   (RFC 4648 alphabet, "=" padding, no newlines)
-- crypto.base64_decode(s) -> bytes | nil, err
--   Strict: only A-Z a-z 0-9 + /, length a multiple of 4, at most two "="
--   and only at the end, unused trailing bits zero; no whitespace.
-- crypto.random_bytes(n) -> n bytes from OpenSSL's CSPRNG (RAND_bytes);
--   raises if the generator fails.  0 <= n <= 2^31-1.
-- crypto.hasher(alg) -> hasher
--   hasher:update(s) -> hasher   (chainable)
--   hasher:final() -> raw digest; any use of the hasher afterwards raises.
--   The hasher frees its OpenSSL context on final(), on garbage collection,
--   or when closed as a to-be-closed variable (`local h <close> = ...`).
local core = require "lumu._crypto"

local M = {}

M.sha256 = core.sha256
M.sha1 = core.sha1
M.md5 = core.md5
M.hmac_sha256 = core.hmac_sha256
M.digest = core.digest
M.hmac = core.hmac
M.equals = core.equals
M.hex = core.hex
M.unhex = core.unhex
M.base64_encode = core.b64encode
M.base64_decode = core.b64decode
M.random_bytes = core.random_bytes
M.hasher = core.hasher

return M
