/*
 * lumu._crypto: the C core of lumu.crypto (stdlib/lumu/crypto.lua).
 *
 * Digests and HMAC through OpenSSL's EVP interface, hex and strict base64,
 * random bytes, and an incremental hasher userdata.
 *
 *   digest(alg, s) -> raw digest            (alg: any OpenSSL digest name)
 *   sha256(s), sha1(s), md5(s) -> raw digest
 *   hmac(alg, key, msg) -> raw MAC
 *   hmac_sha256(key, msg) -> raw MAC
 *   hex(s) -> lowercase hex
 *   unhex(hex) -> bytes | nil, err
 *   b64encode(s) -> base64 (RFC 4648, padded, no line breaks)
 *   b64decode(s) -> bytes | nil, err (strict)
 *   random_bytes(n) -> n bytes from RAND_bytes; raises if it fails
 *   equals(a, b) -> boolean, constant time in the length of a
 *   hasher(alg) -> lumu.crypto.Hasher with :update(s) -> self, :final() -> raw
 *
 * An unknown algorithm is a misuse and raises (argument error).
 *
 * libcrypto.so.3 is loaded on the first call that needs it (lazylib.h): those
 * raise "libcrypto.so.3 not available: <reason>" without it; hex, unhex,
 * b64encode and b64decode never need it.
 */
#include "host.h"
#include "lazylib.h"

#include <lauxlib.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <limits.h>
#include <string.h>

#define HASHER_MT "lumu.crypto.Hasher"

/* The digest named at arg, or an argument error.  [-0, +0, v] */
static const EVP_MD *crypto_checkmd(lua_State *L, int arg)
{
    const char *name = luaL_checkstring(L, arg);
    lumu_lazy_check(L, &lumu_lazy_crypto);
    const EVP_MD *md = EVP_get_digestbyname(name);
    if (!md)
        luaL_argerror(L, arg, lua_pushfstring(L, "unknown digest '%s'", name));
    return md;
}

/* Raises "<what>: <OpenSSL error>" and clears OpenSSL's error queue.
 * Nothing may be left allocated by the caller.  [-0, +0, v] */
static int crypto_sslerror(lua_State *L, const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    else
        strcpy(buf, "unknown error");
    ERR_clear_error();
    return luaL_error(L, "%s: %s", what, buf);
}

/* Pushes the digest of the string at arg.  [-0, +1, v] */
static int crypto_pushdigest(lua_State *L, const EVP_MD *md, int arg)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    if (!EVP_Digest(s, len, out, &outlen, md, NULL))
        return crypto_sslerror(L, "digest");
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}

/* digest(alg, s) -> raw  [-0, +1, v] */
static int crypto_digest(lua_State *L)
{
    return crypto_pushdigest(L, crypto_checkmd(L, 1), 2);
}

/* The digests with their own function, by upvalue index. */
static const struct {
    const char *name;
    const EVP_MD *(*md)(void);
} s_fixed[] = {{"sha256", EVP_sha256}, {"sha1", EVP_sha1}, {"md5", EVP_md5}};

/* sha256(s) & co.: closures over the index in s_fixed (integer upvalue).
 * [-0, +1, v] */
static int crypto_digest_fixed(lua_State *L)
{
    lumu_lazy_check(L, &lumu_lazy_crypto);
    return crypto_pushdigest(L, s_fixed[lua_tointeger(L, lua_upvalueindex(1))].md(), 1);
}

/* Pushes the HMAC of the strings at arg (key) and arg + 1 (message).
 * [-0, +1, v] */
static int crypto_pushhmac(lua_State *L, const EVP_MD *md, int arg)
{
    size_t klen, mlen;
    const char *key = luaL_checklstring(L, arg, &klen);
    const char *msg = luaL_checklstring(L, arg + 1, &mlen);
    luaL_argcheck(L, klen <= INT_MAX, arg, "key too long");
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    /* HMAC() wants a non-NULL key even when it is empty. */
    static const unsigned char empty[1] = {0};
    if (!HMAC(md, klen ? (const void *)key : (const void *)empty, (int)klen,
              (const unsigned char *)msg, mlen, out, &outlen))
        return crypto_sslerror(L, "hmac");
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}

/* hmac(alg, key, msg) -> raw  [-0, +1, v] */
static int crypto_hmac(lua_State *L)
{
    return crypto_pushhmac(L, crypto_checkmd(L, 1), 2);
}

/* hmac_sha256(key, msg) -> raw  [-0, +1, v] */
static int crypto_hmac_sha256(lua_State *L)
{
    lumu_lazy_check(L, &lumu_lazy_crypto);
    return crypto_pushhmac(L, EVP_sha256(), 1);
}

/* equals(a, b) -> boolean  [-0, +1, v] */
static int crypto_equals(lua_State *L)
{
    size_t alen, blen;
    const char *a = luaL_checklstring(L, 1, &alen);
    const char *b = luaL_checklstring(L, 2, &blen);
    lumu_lazy_check(L, &lumu_lazy_crypto);
    lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
    return 1;
}

/* hex(s) -> lowercase hex  [-0, +1, v] */
static int crypto_hex(lua_State *L)
{
    static const char digits[] = "0123456789abcdef";
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len <= ((size_t)-1) / 2, 1, "string too long");
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len * 2);
    for (size_t i = 0; i < len; i++) {
        p[2 * i] = digits[s[i] >> 4];
        p[2 * i + 1] = digits[s[i] & 15];
    }
    luaL_pushresultsize(&b, len * 2);
    return 1;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* unhex(hex) -> bytes | nil, err  [-0, +1|2, m] */
static int crypto_unhex(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    if (len % 2) {
        luaL_pushfail(L);
        lua_pushliteral(L, "invalid hex: odd length");
        return 2;
    }
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len / 2);
    for (size_t i = 0; i < len; i += 2) {
        int hi = hexval(s[i]), lo = hexval(s[i + 1]);
        if (hi < 0 || lo < 0) {
            size_t at = i + 1 + (hi >= 0);
            luaL_pushfail(L);
            lua_pushfstring(L, "invalid hex: bad character at position %I", (lua_Integer)at);
            return 2;
        }
        p[i / 2] = (char)(hi << 4 | lo);
    }
    luaL_pushresultsize(&b, len / 2);
    return 1;
}

static const char b64chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* b64encode(s) -> base64  [-0, +1, v] */
static int crypto_b64encode(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len / 3 < ((size_t)-1) / 4 - 1, 1, "string too long");
    size_t olen = (len + 2) / 3 * 4;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, olen);
    size_t i = 0, o = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned long v = (unsigned long)s[i] << 16 | (unsigned long)s[i + 1] << 8 | s[i + 2];
        p[o++] = b64chars[v >> 18 & 63];
        p[o++] = b64chars[v >> 12 & 63];
        p[o++] = b64chars[v >> 6 & 63];
        p[o++] = b64chars[v & 63];
    }
    if (len - i == 1) {
        unsigned long v = (unsigned long)s[i] << 16;
        p[o++] = b64chars[v >> 18 & 63];
        p[o++] = b64chars[v >> 12 & 63];
        p[o++] = '=';
        p[o++] = '=';
    } else if (len - i == 2) {
        unsigned long v = (unsigned long)s[i] << 16 | (unsigned long)s[i + 1] << 8;
        p[o++] = b64chars[v >> 18 & 63];
        p[o++] = b64chars[v >> 12 & 63];
        p[o++] = b64chars[v >> 6 & 63];
        p[o++] = '=';
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Pushes nil, "invalid base64: <why>" and returns 2.  [-0, +2, m] */
static int b64fail(lua_State *L, const char *why, size_t pos)
{
    luaL_pushfail(L);
    if (pos)
        lua_pushfstring(L, "invalid base64: %s at position %I", why, (lua_Integer)pos);
    else
        lua_pushfstring(L, "invalid base64: %s", why);
    return 2;
}

/* b64decode(s) -> bytes | nil, err
 * Strict RFC 4648: alphabet A-Z a-z 0-9 + /, length a multiple of 4, '='
 * only as the last one or two characters, and unused bits zero.
 * [-0, +1|2, m] */
static int crypto_b64decode(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    if (len % 4)
        return b64fail(L, "length is not a multiple of 4", 0);
    size_t pad = 0;
    if (len >= 1 && s[len - 1] == '=')
        pad = (len >= 2 && s[len - 2] == '=') ? 2 : 1;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, len / 4 * 3);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        size_t n = (i + 4 == len) ? 4 - pad : 4; /* significant characters */
        for (size_t j = 0; j < 4; j++) {
            if (j >= n) {
                v[j] = 0;
                continue;
            }
            v[j] = b64val(s[i + j]);
            if (v[j] < 0)
                return b64fail(L, s[i + j] == '=' ? "misplaced padding" : "bad character",
                               i + j + 1);
        }
        unsigned long w = (unsigned long)v[0] << 18 | (unsigned long)v[1] << 12 |
                          (unsigned long)v[2] << 6 | (unsigned long)v[3];
        p[o++] = (char)(w >> 16 & 255);
        if (n >= 3)
            p[o++] = (char)(w >> 8 & 255);
        if (n == 4)
            p[o++] = (char)(w & 255);
        if ((n == 2 && (w & 0xffff)) || (n == 3 && (w & 0xff)))
            return b64fail(L, "non-zero padding bits", i + n);
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

/* random_bytes(n) -> string  [-0, +1, v] */
static int crypto_random_bytes(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0 && n <= INT_MAX, 1, "out of range");
    lumu_lazy_check(L, &lumu_lazy_crypto);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)n);
    if (n > 0 && RAND_bytes((unsigned char *)p, (int)n) != 1)
        return crypto_sslerror(L, "random_bytes");
    luaL_pushresultsize(&b, (size_t)n);
    return 1;
}

/* ---------------------------------------------------------------------------
 * Hasher userdata
 * ------------------------------------------------------------------------- */

typedef struct crypto_hasher {
    EVP_MD_CTX *ctx; /* NULL once finalised or collected */
    const char *name;  /* static string owned by OpenSSL */
} crypto_hasher;

#define tohasher(L) ((crypto_hasher *)luaL_checkudata(L, 1, HASHER_MT))

/* The live hasher at index 1, or a raised error after final().  [-0, +0, v] */
static crypto_hasher *hasher_check(lua_State *L)
{
    crypto_hasher *h = tohasher(L);
    if (!h->ctx)
        luaL_error(L, "attempt to use a finalised hasher");
    return h;
}

/* hasher(alg) -> Hasher  [-0, +1, v] */
static int crypto_hasher_new(lua_State *L)
{
    const EVP_MD *md = crypto_checkmd(L, 1);
    crypto_hasher *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->ctx = NULL;
    h->name = EVP_MD_get0_name(md);
    luaL_setmetatable(L, HASHER_MT);
    /* the userdata owns the context from here on: __gc frees it */
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx)
        return luaL_error(L, "hasher: out of memory");
    if (!EVP_DigestInit_ex(h->ctx, md, NULL))
        return crypto_sslerror(L, "hasher");
    return 1;
}

/* h:update(s) -> h  [-0, +1, v] */
static int hasher_update(lua_State *L)
{
    crypto_hasher *h = hasher_check(L);
    size_t len;
    const char *s = luaL_checklstring(L, 2, &len);
    if (!EVP_DigestUpdate(h->ctx, s, len))
        return crypto_sslerror(L, "hasher:update");
    lua_settop(L, 1);
    return 1;
}

/* h:final() -> raw digest; the hasher is unusable afterwards  [-0, +1, v] */
static int hasher_final(lua_State *L)
{
    crypto_hasher *h = hasher_check(L);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int outlen = 0;
    int ok = EVP_DigestFinal_ex(h->ctx, out, &outlen);
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    if (!ok)
        return crypto_sslerror(L, "hasher:final");
    lua_pushlstring(L, (const char *)out, outlen);
    return 1;
}

/* __gc and __close: idempotent  [-0, +0, -] */
static int hasher_gc(lua_State *L)
{
    crypto_hasher *h = tohasher(L);
    if (h->ctx) {
        EVP_MD_CTX_free(h->ctx);
        h->ctx = NULL;
    }
    return 0;
}

static int hasher_tostring(lua_State *L)
{
    crypto_hasher *h = tohasher(L);
    if (h->ctx)
        lua_pushfstring(L, "lumu.crypto.Hasher (%s) (%p)", h->name ? h->name : "?", (void *)h);
    else
        lua_pushfstring(L, "lumu.crypto.Hasher (finalised) (%p)", (void *)h);
    return 1;
}

static const luaL_Reg hasher_methods[] = {
    {"update", hasher_update},
    {"final", hasher_final},
    {NULL, NULL}};

static const luaL_Reg hasher_meta[] = {
    {"__index", NULL}, /* placeholder */
    {"__gc", hasher_gc},
    {"__close", hasher_gc},
    {"__tostring", hasher_tostring},
    {NULL, NULL}};

/* [-0, +0, e] */
static void hasher_createmeta(lua_State *L)
{
    luaL_newmetatable(L, HASHER_MT);
    luaL_setfuncs(L, hasher_meta, 0);
    luaL_newlibtable(L, hasher_methods);
    luaL_setfuncs(L, hasher_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

int luaopen_lumu__crypto(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"digest", crypto_digest},
        {"hmac", crypto_hmac},
        {"hmac_sha256", crypto_hmac_sha256},
        {"equals", crypto_equals},
        {"hex", crypto_hex},
        {"unhex", crypto_unhex},
        {"b64encode", crypto_b64encode},
        {"b64decode", crypto_b64decode},
        {"random_bytes", crypto_random_bytes},
        {"hasher", crypto_hasher_new},
        {NULL, NULL}};
    hasher_createmeta(L);
    luaL_newlib(L, fns);
    for (size_t i = 0; i < sizeof s_fixed / sizeof s_fixed[0]; i++) {
        lua_pushinteger(L, (lua_Integer)i);
        lua_pushcclosure(L, crypto_digest_fixed, 1);
        lua_setfield(L, -2, s_fixed[i].name);
    }
    return 1;
}
