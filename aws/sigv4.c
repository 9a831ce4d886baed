/* sigv4: AWS Signature Version 4 / 4a.  See sigv4.h for the contract.
 *
 * Structure: one growable buffer type with a sticky out-of-memory flag (so
 * building strings needs one check at the end, not one per append), the
 * canonicalization steps (path, query, headers), key derivation (+ cache),
 * and aws_sigv4_sign tying them together with a single cleanup label.
 *
 * OpenSSL's libcrypto is loaded on first use (lua/lazylib.h): every public
 * function that needs it starts with crypto_ready(), so a missing library is
 * an AWS_ERR_CRYPTO error ("libcrypto.so.3 not available: ..."), not a crash.
 */
#include "sigv4.h"
#include "lazylib.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------
 * Growable string buffer
 * ------------------------------------------------------------------------ */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom)
        return;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = true;
        return;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = aws_realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void sb_add(sbuf *b, const void *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom)
        return;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_addc(sbuf *b, char c)
{
    sb_add(b, &c, 1);
}

static const char hexdigits[] = "0123456789abcdef";
static const char HEXDIGITS[] = "0123456789ABCDEF";

static void sb_hex(sbuf *b, const unsigned char *d, size_t n)
{
    sb_reserve(b, 2 * n);
    if (b->oom)
        return;
    for (size_t i = 0; i < n; i++) {
        b->p[b->len++] = hexdigits[d[i] >> 4];
        b->p[b->len++] = hexdigits[d[i] & 15];
    }
    b->p[b->len] = '\0';
}

static void sb_free(sbuf *b)
{
    aws_free(b->p);
    *b = (sbuf){0};
}

/* Hands the string over to the caller (never NULL unless out of memory). */
static char *sb_take(sbuf *b, aws_error *err)
{
    if (!b->oom && !b->p)
        sb_reserve(b, 0);
    if (b->oom) {
        sb_free(b);
        aws_error_oom(err);
        return NULL;
    }
    b->p[b->len] = '\0';
    char *p = b->p;
    *b = (sbuf){0};
    return p;
}

/* ------------------------------------------------------------------------
 * Percent-encoding
 * ------------------------------------------------------------------------ */

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
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

/* The byte of a valid "%XX" at s[i], or -1. */
static int escape_at(const char *s, size_t n, size_t i)
{
    if (s[i] != '%' || i + 2 >= n)
        return -1;
    int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
}

static void sb_pct(sbuf *b, unsigned char c)
{
    char e[3] = {'%', HEXDIGITS[c >> 4], HEXDIGITS[c & 15]};
    sb_add(b, e, 3);
}

static void sb_encode(sbuf *b, const char *s, size_t n, bool keep_slash)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c) || (keep_slash && c == '/'))
            sb_addc(b, (char)c);
        else
            sb_pct(b, c);
    }
}

/* Decodes valid %XX escapes ('+' stays '+'), then encodes (no '/' kept). */
static void sb_reencode(sbuf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int c = escape_at(s, n, i);
        if (c >= 0)
            i += 2;
        else
            c = (unsigned char)s[i];
        if (is_unreserved((unsigned char)c))
            sb_addc(b, (char)c);
        else
            sb_pct(b, (unsigned char)c);
    }
}

char *aws_sigv4_uri_encode(const char *s, size_t n, bool keep_slash, aws_error *err)
{
    if (!s && n)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "uri_encode: NULL input"), NULL;
    sbuf b = {0};
    sb_encode(&b, s, n, keep_slash);
    return sb_take(&b, err);
}

/* ------------------------------------------------------------------------
 * Canonical path
 * ------------------------------------------------------------------------ */

/* RFC 3986 remove_dot_segments plus removal of empty segments.  p starts
 * with '/'. */
static void sb_normalized_path(sbuf *out, const char *p)
{
    size_t n = strlen(p);
    size_t i = 0;
    bool trailing = false;
    while (i < n) {
        /* at a '/' */
        size_t start = i + 1, end = start;
        while (end < n && p[end] != '/')
            end++;
        size_t len = end - start;
        trailing = false;
        if (len == 0 || (len == 1 && p[start] == '.')) {
            trailing = true;
        } else if (len == 2 && p[start] == '.' && p[start + 1] == '.') {
            trailing = true;
            if (!out->oom && out->p) {
                while (out->len > 0 && out->p[out->len - 1] != '/')
                    out->len--;
                if (out->len > 0)
                    out->len--; /* the '/' itself */
                out->p[out->len] = '\0';
            }
        } else {
            sb_addc(out, '/');
            sb_add(out, p + start, len);
        }
        i = end;
    }
    if (out->len == 0 || trailing)
        sb_addc(out, '/');
}

static void sb_canonical_path(sbuf *b, const char *path, bool double_encode, bool normalize)
{
    sbuf norm = {0};
    const char *p = path;
    if (normalize) {
        sb_normalized_path(&norm, path);
        if (norm.oom) {
            b->oom = true;
            sb_free(&norm);
            return;
        }
        p = norm.p;
    }
    size_t n = strlen(p);
    if (double_encode) {
        sb_encode(b, p, n, true);
    } else {
        /* Keep valid escapes (normalized), encode the rest once. */
        for (size_t i = 0; i < n; i++) {
            int c = escape_at(p, n, i);
            bool escaped = c >= 0;
            if (escaped)
                i += 2;
            else
                c = (unsigned char)p[i];
            if (is_unreserved((unsigned char)c) || (c == '/' && !escaped))
                sb_addc(b, (char)c);
            else
                sb_pct(b, (unsigned char)c); /* "%2F" stays an escape */
        }
    }
    sb_free(&norm);
}

static bool check_path(const char *path, aws_error *err)
{
    if (path[0] != '/')
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "path must start with '/': \"%.64s\"",
                             path);
    return true;
}

char *aws_sigv4_canonical_path(const char *path, bool double_encode, bool normalize,
                               aws_error *err)
{
    if (!path || !*path)
        path = "/";
    if (!check_path(path, err))
        return NULL;
    sbuf b = {0};
    sb_canonical_path(&b, path, double_encode, normalize);
    return sb_take(&b, err);
}

/* ------------------------------------------------------------------------
 * Canonical query
 * ------------------------------------------------------------------------ */

typedef struct qparam {
    size_t key, key_len; /* offsets into the encoded buffer while it grows */
    size_t val, val_len;
    const char *k, *v;   /* set once the buffer is complete */
} qparam;

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

static int cmp_qparam(const void *pa, const void *pb)
{
    const qparam *a = pa, *b = pb;
    int c = cmp_bytes(a->k, a->key_len, b->k, b->key_len);
    if (c)
        return c;
    return cmp_bytes(a->v, a->val_len, b->v, b->val_len);
}

/* Appends the canonical form of `query` (may be NULL) to out: every key and
 * value decoded and re-encoded into `enc`, then the pairs sorted. */
static bool sb_canonical_query(sbuf *out, const char *query, aws_error *err)
{
    bool ok = false;
    sbuf enc = {0};
    qparam *params = NULL;
    size_t count = 0, cap = 0;
    size_t n = query ? strlen(query) : 0;

    sb_reserve(&enc, n); /* never NULL below, even when everything is empty */
    if (enc.oom) {
        aws_error_oom(err);
        goto cleanup;
    }
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && query[end] != '&')
            end++;
        if (end > i) {
            size_t eq = i;
            while (eq < end && query[eq] != '=')
                eq++;
            if (count == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                qparam *np = aws_realloc(params, ncap * sizeof *np);
                if (!np) {
                    aws_error_oom(err);
                    goto cleanup;
                }
                params = np;
                cap = ncap;
            }
            qparam *q = &params[count++];
            q->key = enc.len;
            sb_reencode(&enc, query + i, eq - i);
            q->key_len = enc.len - q->key;
            q->val = enc.len;
            if (eq < end)
                sb_reencode(&enc, query + eq + 1, end - eq - 1);
            q->val_len = enc.len - q->val;
            if (enc.oom) {
                aws_error_oom(err);
                goto cleanup;
            }
        }
        i = end + 1;
    }
    for (size_t k = 0; k < count; k++) {
        params[k].k = enc.p + params[k].key;
        params[k].v = enc.p + params[k].val;
    }
    if (count > 1)
        qsort(params, count, sizeof *params, cmp_qparam);
    for (size_t k = 0; k < count; k++) {
        if (k)
            sb_addc(out, '&');
        sb_add(out, params[k].k, params[k].key_len);
        sb_addc(out, '=');
        sb_add(out, params[k].v, params[k].val_len);
    }
    if (out->oom) {
        aws_error_oom(err);
        goto cleanup;
    }
    ok = true;
cleanup:
    aws_free(params);
    sb_free(&enc);
    return ok;
}

char *aws_sigv4_canonical_query(const char *query, aws_error *err)
{
    sbuf b = {0};
    if (!sb_canonical_query(&b, query, err)) {
        sb_free(&b);
        return NULL;
    }
    return sb_take(&b, err);
}

/* ------------------------------------------------------------------------
 * Time, hashing, keys
 * ------------------------------------------------------------------------ */

bool aws_sigv4_format_time(int64_t t, char out[17], aws_error *err)
{
    /* 1970-01-01 .. 9999-12-31T23:59:59Z */
    if (t < 0 || t > INT64_C(253402300799))
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "signing time %lld out of range",
                             (long long)t);
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) ||
        strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "cannot format signing time %lld",
                             (long long)t);
    return true;
}

/* True when libcrypto is loaded; otherwise false with err set. */
static bool crypto_ready(aws_error *err)
{
    const char *why;
    if (!lumu_lazy_load(&lumu_lazy_crypto, &why))
        return aws_error_set(err, AWS_ERR_CRYPTO, "%s", why);
    return true;
}

static bool sha256(const void *d, size_t n, unsigned char out[32], aws_error *err)
{
    if (!EVP_Digest(d, n, out, NULL, EVP_sha256(), NULL))
        return aws_error_set(err, AWS_ERR_CRYPTO, "SHA-256 failed");
    return true;
}

static bool hmac(const void *key, size_t key_len, const void *d, size_t n,
                 unsigned char out[32], aws_error *err)
{
    unsigned int len = 32;
    if (key_len > 0x7fffffff ||
        !HMAC(EVP_sha256(), key, (int)key_len, d, n, out, &len) || len != 32)
        return aws_error_set(err, AWS_ERR_CRYPTO, "HMAC-SHA256 failed");
    return true;
}

bool aws_sigv4_derive_key(const char *secret_key, const char *date8, const char *region,
                          const char *service, unsigned char out[32], aws_error *err)
{
    if (!secret_key || !date8 || !region || !service)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "derive_key: missing argument");
    if (!crypto_ready(err))
        return false;
    bool ok = false;
    size_t slen = strlen(secret_key);
    char *k = aws_malloc(slen + 5);
    unsigned char a[32], b[32];
    if (!k)
        return aws_error_oom(err);
    memcpy(k, "AWS4", 4);
    memcpy(k + 4, secret_key, slen + 1);
    if (!hmac(k, slen + 4, date8, strlen(date8), a, err) ||
        !hmac(a, 32, region, strlen(region), b, err) ||
        !hmac(b, 32, service, strlen(service), a, err) ||
        !hmac(a, 32, "aws4_request", 12, out, err))
        goto cleanup;
    ok = true;
cleanup:
    OPENSSL_cleanse(k, slen + 4);
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(b, sizeof b);
    aws_free(k);
    return ok;
}

/* SigV4a private key: NIST SP 800-108 KDF (counter mode, HMAC-SHA256, one
 * 256-bit block) keyed with "AWS4A"+secret; label "AWS4-ECDSA-P256-SHA256";
 * context = access key || counter byte.  The candidate c is accepted when
 * c <= n-2 and the key is c+1 (so it lies in [1, n-1]); otherwise the
 * counter goes up (1..254). */
static EVP_PKEY *sigv4a_derive(const char *access_key, const char *secret_key, aws_error *err)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EC_GROUP *group = NULL;
    EC_POINT *pub = NULL;
    BN_CTX *bnctx = NULL;
    BIGNUM *c = NULL, *limit = NULL;
    char *ikey = NULL;
    unsigned char *fixed = NULL;
    unsigned char k0[32], pubbuf[65];
    size_t slen = strlen(secret_key), alen = strlen(access_key);
    static const char label[] = AWS_SIGV4A_ALGORITHM;
    size_t llen = sizeof label - 1;
    size_t flen = 4 + llen + 1 + alen + 1 + 4;

    ikey = aws_malloc(slen + 5);
    fixed = aws_malloc(flen);
    if (!ikey || !fixed) {
        aws_error_oom(err);
        goto cleanup;
    }
    memcpy(ikey, "AWS4A", 5);
    memcpy(ikey + 5, secret_key, slen);

    bnctx = BN_CTX_new();
    group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    c = BN_secure_new();
    limit = BN_new();
    if (!bnctx || !group || !c || !limit || !BN_copy(limit, EC_GROUP_get0_order(group)) ||
        !BN_sub_word(limit, 2)) {
        aws_error_set(err, AWS_ERR_CRYPTO, "SigV4a: EC setup failed");
        goto cleanup;
    }

    unsigned char *f = fixed;
    memcpy(f, "\0\0\0\1", 4), f += 4;
    memcpy(f, label, llen), f += llen;
    *f++ = 0;
    memcpy(f, access_key, alen), f += alen;
    unsigned char *counter = f++;
    memcpy(f, "\0\0\1\0", 4); /* L = 256 bits */

    bool found = false;
    for (int i = 1; i <= 254 && !found; i++) {
        *counter = (unsigned char)i;
        if (!hmac(ikey, slen + 5, fixed, flen, k0, err))
            goto cleanup;
        if (!BN_bin2bn(k0, 32, c)) {
            aws_error_set(err, AWS_ERR_CRYPTO, "SigV4a: BN_bin2bn failed");
            goto cleanup;
        }
        if (BN_cmp(c, limit) <= 0)
            found = true;
    }
    if (!found) {
        aws_error_set(err, AWS_ERR_CRYPTO, "SigV4a: key derivation did not converge");
        goto cleanup;
    }
    pub = EC_POINT_new(group);
    if (!BN_add_word(c, 1) || !pub || !EC_POINT_mul(group, pub, c, NULL, NULL, bnctx) ||
        EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, pubbuf, sizeof pubbuf,
                           bnctx) != sizeof pubbuf) {
        aws_error_set(err, AWS_ERR_CRYPTO, "SigV4a: public key computation failed");
        goto cleanup;
    }
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, SN_X9_62_prime256v1,
                                         0) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, c) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pubbuf, sizeof pubbuf) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) || EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) <= 0) {
        aws_error_set(err, AWS_ERR_CRYPTO, "SigV4a: building the EC key failed");
        EVP_PKEY_free(pkey);
        pkey = NULL;
        goto cleanup;
    }
cleanup:
    if (ikey)
        OPENSSL_cleanse(ikey, slen + 5);
    if (fixed)
        OPENSSL_cleanse(fixed, flen);
    OPENSSL_cleanse(k0, sizeof k0);
    aws_free(ikey);
    aws_free(fixed);
    OSSL_PARAM_free(params); /* OSSL_PARAM_clear_free is 3.2+; params hold a copy of d */
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(pctx);
    EC_POINT_free(pub);
    EC_GROUP_free(group);
    BN_clear_free(c);
    BN_free(limit);
    BN_CTX_free(bnctx);
    return pkey;
}

bool aws_sigv4a_public_key(const char *access_key, const char *secret_key,
                           unsigned char out[65], aws_error *err)
{
    if (!access_key || !*access_key || !secret_key || !*secret_key)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "SigV4a: missing credentials");
    if (!crypto_ready(err))
        return false;
    EVP_PKEY *pkey = sigv4a_derive(access_key, secret_key, err);
    if (!pkey)
        return false;
    size_t len = 0;
    bool ok = EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, out, 65, &len) &&
              len == 65;
    EVP_PKEY_free(pkey);
    if (!ok)
        return aws_error_set(err, AWS_ERR_CRYPTO, "SigV4a: cannot export the public key");
    return true;
}

static bool hex_decode(const char *hex, unsigned char *out, size_t max, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2 || n / 2 > max)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int h = hexval((unsigned char)hex[i]), l = hexval((unsigned char)hex[i + 1]);
        if (h < 0 || l < 0)
            return false;
        out[i / 2] = (unsigned char)(h * 16 + l);
    }
    *len = n / 2;
    return true;
}

bool aws_sigv4a_verify(const unsigned char public_key[65], const char *string_to_sign,
                       const char *signature_hex, aws_error *err)
{
    if (!public_key || !string_to_sign || !signature_hex)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "sigv4a_verify: missing argument");
    unsigned char der[80];
    size_t der_len = 0;
    if (!hex_decode(signature_hex, der, sizeof der, &der_len) || der_len == 0)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "sigv4a_verify: bad signature hex");
    if (!crypto_ready(err))
        return false;
    bool ok = false;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *md = NULL;
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 (char *)SN_X9_62_prime256v1, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                                  (void *)public_key, 65);
    params[2] = OSSL_PARAM_construct_end();
    if (!(pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) ||
        EVP_PKEY_fromdata_init(pctx) <= 0 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0) {
        aws_error_set(err, AWS_ERR_INVALID_ARG, "sigv4a_verify: bad public key");
        goto cleanup;
    }
    if (!(md = EVP_MD_CTX_new()) ||
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) <= 0) {
        aws_error_set(err, AWS_ERR_CRYPTO, "sigv4a_verify: OpenSSL setup failed");
        goto cleanup;
    }
    int r = EVP_DigestVerify(md, der, der_len, (const unsigned char *)string_to_sign,
                             strlen(string_to_sign));
    ok = r == 1;
    if (!ok)
        aws_error_clear(err); /* "not valid" is an answer, not an error */
cleanup:
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    return ok;
}

/* ------------------------------------------------------------------------
 * Key cache
 * ------------------------------------------------------------------------ */

#define V4_SLOTS 16
#define V4A_SLOTS 4

struct aws_sigv4_key_cache {
    struct {
        bool used;
        unsigned char id[32];
        unsigned char key[32];
    } v4[V4_SLOTS];
    struct {
        unsigned char id[32];
        EVP_PKEY *key;
    } v4a[V4A_SLOTS];
    unsigned v4_next, v4a_next;
    uint64_t hits, misses;
};

aws_sigv4_key_cache *aws_sigv4_key_cache_new(aws_error *err)
{
    aws_sigv4_key_cache *c = aws_calloc(1, sizeof *c);
    if (!c)
        aws_error_oom(err);
    return c;
}

void aws_sigv4_key_cache_free(aws_sigv4_key_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < V4A_SLOTS; i++)
        if (c->v4a[i].key) /* only ever set with libcrypto loaded */
            EVP_PKEY_free(c->v4a[i].key);
    explicit_bzero(c, sizeof *c); /* libcrypto may never have been loaded */
    aws_free(c);
}

void aws_sigv4_key_cache_stats(const aws_sigv4_key_cache *c, uint64_t *hits, uint64_t *misses)
{
    if (hits)
        *hits = c ? c->hits : 0;
    if (misses)
        *misses = c ? c->misses : 0;
}

/* SHA-256 over length-prefixed fields: no two field lists share an id. */
static bool fingerprint(unsigned char out[32], aws_error *err, const char *tag, int nfields, ...)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(md, tag, strlen(tag) + 1);
    va_list ap;
    va_start(ap, nfields);
    for (int i = 0; i < nfields && ok; i++) {
        const char *s = va_arg(ap, const char *);
        uint64_t n = strlen(s);
        unsigned char len[8];
        for (int k = 0; k < 8; k++)
            len[k] = (unsigned char)(n >> (56 - 8 * k));
        ok = EVP_DigestUpdate(md, len, 8) && EVP_DigestUpdate(md, s, n);
    }
    va_end(ap);
    ok = ok && EVP_DigestFinal_ex(md, out, NULL);
    EVP_MD_CTX_free(md);
    if (!ok)
        return aws_error_set(err, AWS_ERR_CRYPTO, "SHA-256 failed");
    return true;
}

static bool v4_signing_key(const aws_sigv4_config *cfg, const char *date8,
                           unsigned char key[32], aws_error *err)
{
    aws_sigv4_key_cache *c = cfg->cache;
    unsigned char id[32];
    if (!c)
        return aws_sigv4_derive_key(cfg->secret_key, date8, cfg->region, cfg->service, key, err);
    if (!fingerprint(id, err, "v4", 5, cfg->access_key, cfg->secret_key, date8, cfg->region,
                     cfg->service))
        return false;
    for (int i = 0; i < V4_SLOTS; i++) {
        if (c->v4[i].used && !CRYPTO_memcmp(c->v4[i].id, id, 32)) {
            memcpy(key, c->v4[i].key, 32);
            c->hits++;
            return true;
        }
    }
    c->misses++;
    if (!aws_sigv4_derive_key(cfg->secret_key, date8, cfg->region, cfg->service, key, err))
        return false;
    unsigned slot = c->v4_next++ % V4_SLOTS;
    c->v4[slot].used = true;
    memcpy(c->v4[slot].id, id, 32);
    memcpy(c->v4[slot].key, key, 32);
    return true;
}

/* Returns a key pair the caller must EVP_PKEY_free (a new reference). */
static EVP_PKEY *v4a_signing_key(const aws_sigv4_config *cfg, aws_error *err)
{
    aws_sigv4_key_cache *c = cfg->cache;
    unsigned char id[32];
    if (!c)
        return sigv4a_derive(cfg->access_key, cfg->secret_key, err);
    if (!fingerprint(id, err, "v4a", 2, cfg->access_key, cfg->secret_key))
        return NULL;
    for (int i = 0; i < V4A_SLOTS; i++) {
        if (c->v4a[i].key && !CRYPTO_memcmp(c->v4a[i].id, id, 32)) {
            if (!EVP_PKEY_up_ref(c->v4a[i].key))
                return aws_error_set(err, AWS_ERR_CRYPTO, "EVP_PKEY_up_ref failed"), NULL;
            c->hits++;
            return c->v4a[i].key;
        }
    }
    c->misses++;
    EVP_PKEY *k = sigv4a_derive(cfg->access_key, cfg->secret_key, err);
    if (!k)
        return NULL;
    if (!EVP_PKEY_up_ref(k))
        return k; /* usable, just not cached */
    unsigned slot = c->v4a_next++ % V4A_SLOTS;
    EVP_PKEY_free(c->v4a[slot].key);
    c->v4a[slot].key = k;
    memcpy(c->v4a[slot].id, id, 32);
    return k;
}

/* ------------------------------------------------------------------------
 * Canonical headers
 * ------------------------------------------------------------------------ */

typedef struct hentry {
    const char *name;
    size_t name_len;
    const char *value;
    size_t index; /* input order, for a stable sort */
} hentry;

static int ascii_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool name_is(const char *name, size_t n, const char *lower)
{
    size_t i = 0;
    for (; i < n && lower[i]; i++)
        if (ascii_lower((unsigned char)name[i]) != lower[i])
            return false;
    return i == n && lower[i] == '\0';
}

static int cmp_name(const char *a, size_t an, const char *b, size_t bn)
{
    size_t m = an < bn ? an : bn;
    for (size_t i = 0; i < m; i++) {
        int ca = ascii_lower((unsigned char)a[i]), cb = ascii_lower((unsigned char)b[i]);
        if (ca != cb)
            return ca - cb;
    }
    return an < bn ? -1 : an > bn;
}

static int cmp_hentry(const void *pa, const void *pb)
{
    const hentry *a = pa, *b = pb;
    int c = cmp_name(a->name, a->name_len, b->name, b->name_len);
    if (c)
        return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trim + collapse whitespace runs to one space. */
static void sb_header_value(sbuf *b, const char *v)
{
    while (is_ws((unsigned char)*v))
        v++;
    bool pending = false;
    for (; *v; v++) {
        if (is_ws((unsigned char)*v)) {
            pending = true;
            continue;
        }
        if (pending)
            sb_addc(b, ' ');
        pending = false;
        sb_addc(b, *v);
    }
}

static const char *const never_signed[] = {
    "authorization", "connection", "expect", "transfer-encoding", "upgrade", "user-agent",
    "x-amzn-trace-id",
};

/* Writes "name:value\n" lines to headers_out and "a;b" to signed_out. */
static bool canonical_headers(const aws_sigv4_header *extra, size_t nextra,
                              const aws_sigv4_request *req, const char *const *replaced,
                              size_t nreplaced, sbuf *headers_out, sbuf *signed_out,
                              aws_error *err)
{
    bool ok = false;
    bool have_host = false;
    size_t total = req->header_count + nextra, n = 0;
    hentry *e = aws_calloc(total ? total : 1, sizeof *e);
    if (!e)
        return aws_error_oom(err);

    for (size_t i = 0; i < req->header_count; i++) {
        const aws_sigv4_header *h = &req->headers[i];
        if (!h->name || !h->value) {
            aws_error_set(err, AWS_ERR_INVALID_ARG, "header %zu: NULL name or value", i + 1);
            goto cleanup;
        }
        size_t len = strlen(h->name);
        if (len == 0) {
            aws_error_set(err, AWS_ERR_INVALID_ARG, "header %zu: empty name", i + 1);
            goto cleanup;
        }
        for (size_t k = 0; k < len; k++) {
            if (!is_tchar((unsigned char)h->name[k])) {
                aws_error_set(err, AWS_ERR_INVALID_ARG, "header %zu: invalid name \"%.64s\"",
                              i + 1, h->name);
                goto cleanup;
            }
        }
        bool skip = false;
        for (size_t k = 0; k < sizeof never_signed / sizeof *never_signed && !skip; k++)
            skip = name_is(h->name, len, never_signed[k]);
        for (size_t k = 0; k < nreplaced && !skip; k++)
            skip = name_is(h->name, len, replaced[k]);
        if (name_is(h->name, len, "host"))
            have_host = true;
        if (!skip)
            e[n++] = (hentry){h->name, len, h->value, i};
    }
    if (!have_host) {
        aws_error_set(err, AWS_ERR_INVALID_ARG, "the request has no Host header");
        goto cleanup;
    }
    for (size_t i = 0; i < nextra; i++)
        e[n++] = (hentry){extra[i].name, strlen(extra[i].name), extra[i].value,
                          req->header_count + i};
    qsort(e, n, sizeof *e, cmp_hentry);

    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 && !cmp_name(e[i].name, e[i].name_len, e[i - 1].name, e[i - 1].name_len);
        if (same) {
            sb_addc(headers_out, ',');
        } else {
            if (i > 0) {
                sb_addc(headers_out, '\n');
                sb_addc(signed_out, ';');
            }
            for (size_t k = 0; k < e[i].name_len; k++) {
                char c = (char)ascii_lower((unsigned char)e[i].name[k]);
                sb_addc(headers_out, c);
                sb_addc(signed_out, c);
            }
            sb_addc(headers_out, ':');
        }
        sb_header_value(headers_out, e[i].value);
    }
    sb_addc(headers_out, '\n');
    if (headers_out->oom || signed_out->oom) {
        aws_error_oom(err);
        goto cleanup;
    }
    ok = true;
cleanup:
    aws_free(e);
    return ok;
}

/* ------------------------------------------------------------------------
 * Signing
 * ------------------------------------------------------------------------ */

void aws_sigv4_config_init(aws_sigv4_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->algorithm = AWS_SIGV4_HMAC_SHA256;
    cfg->mode = AWS_SIGV4_MODE_HEADERS;
    cfg->double_encode_path = true;
    cfg->normalize_path = true;
    cfg->expires = 3600;
}

void aws_sigv4_config_init_s3(aws_sigv4_config *cfg)
{
    aws_sigv4_config_init(cfg);
    cfg->double_encode_path = false;
    cfg->normalize_path = false;
    cfg->add_content_sha256 = true;
    cfg->service = "s3";
}

void aws_sigv4_state_init(aws_sigv4_state *st)
{
    memset(st, 0, sizeof *st);
}

void aws_sigv4_state_clean(aws_sigv4_state *st)
{
    if (!st)
        return;
    aws_free(st->canonical_request);
    aws_free(st->string_to_sign);
    aws_free(st->signature);
    aws_free(st->signed_headers);
    aws_free(st->scope);
    aws_free(st->authorization);
    aws_free(st->query);
    aws_free(st->owned_token_);
    aws_free(st->owned_region_);
    memset(st, 0, sizeof *st);
}

/* A scope / credential component: non-empty, no whitespace, '/' or control. */
static bool check_field(const char *what, const char *s, bool allow_comma, aws_error *err)
{
    if (!s || !*s)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "missing %s", what);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == 0x7f || *p == '/' || (*p == ',' && !allow_comma))
            return aws_error_set(err, AWS_ERR_INVALID_ARG, "invalid character in %s", what);
    }
    return true;
}

static bool check_printable(const char *what, const char *s, aws_error *err)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < ' ' || *p == 0x7f)
            return aws_error_set(err, AWS_ERR_INVALID_ARG, "control character in %s", what);
    }
    return true;
}

static bool check_inputs(const aws_sigv4_request *req, const aws_sigv4_config *cfg,
                         aws_error *err)
{
    if (!req || !cfg)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "sign: NULL request or config");
    if (cfg->algorithm != AWS_SIGV4_HMAC_SHA256 && cfg->algorithm != AWS_SIGV4A_ECDSA_P256)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "unknown signing algorithm %d",
                             (int)cfg->algorithm);
    if (cfg->mode != AWS_SIGV4_MODE_HEADERS && cfg->mode != AWS_SIGV4_MODE_QUERY)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "unknown signing mode %d", (int)cfg->mode);
    if (!req->method || !*req->method)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "missing method");
    for (const char *p = req->method; *p; p++)
        if (!is_tchar((unsigned char)*p))
            return aws_error_set(err, AWS_ERR_INVALID_ARG, "invalid method \"%.32s\"",
                                 req->method);
    if (req->path && *req->path && !check_path(req->path, err))
        return false;
    if (req->header_count && !req->headers)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "header_count without headers");
    if (!check_field("access key", cfg->access_key, false, err) ||
        !check_field(cfg->algorithm == AWS_SIGV4A_ECDSA_P256 ? "region set" : "region",
                     cfg->region, cfg->algorithm == AWS_SIGV4A_ECDSA_P256, err) ||
        !check_field("service", cfg->service, false, err))
        return false;
    if (!cfg->secret_key || !*cfg->secret_key)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "missing secret key");
    if (cfg->session_token && !check_printable("session token", cfg->session_token, err))
        return false;
    if (cfg->mode == AWS_SIGV4_MODE_QUERY &&
        (cfg->expires < 1 || cfg->expires > AWS_SIGV4_MAX_EXPIRES))
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "expires must be 1..%d seconds, not %lld",
                             AWS_SIGV4_MAX_EXPIRES, (long long)cfg->expires);
    switch (req->payload_kind) {
    case AWS_SIGV4_PAYLOAD_BYTES:
        if (!req->payload && req->payload_len)
            return aws_error_set(err, AWS_ERR_INVALID_ARG, "payload_len without payload");
        break;
    case AWS_SIGV4_PAYLOAD_HASH: {
        size_t n = req->payload_hash ? strlen(req->payload_hash) : 0;
        if (n == 0 || n > 64)
            return aws_error_set(err, AWS_ERR_INVALID_ARG, "payload hash must be 1..64 chars");
        for (const char *p = req->payload_hash; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return aws_error_set(err, AWS_ERR_INVALID_ARG, "invalid payload hash");
        break;
    }
    case AWS_SIGV4_PAYLOAD_UNSIGNED:
        break;
    default:
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "unknown payload kind %d",
                             (int)req->payload_kind);
    }
    return true;
}

/* Query parameters that the signer owns in query mode. */
static const char *const auth_params[] = {
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders",
    "X-Amz-Expires", "X-Amz-Security-Token", "X-Amz-Region-Set", "X-Amz-Signature",
};

static bool check_query_free_of_auth(const char *q, aws_error *err)
{
    if (!q)
        return true;
    for (const char *p = q; *p;) {
        const char *end = strchr(p, '&');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        for (size_t k = 0; k < sizeof auth_params / sizeof *auth_params; k++) {
            size_t kl = strlen(auth_params[k]);
            if (n >= kl && !memcmp(p, auth_params[k], kl) && (n == kl || p[kl] == '='))
                return aws_error_set(err, AWS_ERR_INVALID_ARG,
                                     "query already contains %s", auth_params[k]);
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return true;
}

static void sb_param(sbuf *b, const char *name, const char *value)
{
    if (b->len)
        sb_addc(b, '&');
    sb_adds(b, name);
    sb_addc(b, '=');
    sb_encode(b, value, strlen(value), false);
}

bool aws_sigv4_sign(const aws_sigv4_request *req, const aws_sigv4_config *cfg,
                    aws_sigv4_state *st, aws_error *err)
{
    bool ok = false;
    sbuf creq = {0}, cheaders = {0}, signed_h = {0}, query_in = {0}, url_q = {0}, tmp = {0};
    EVP_PKEY *pkey = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned char key[32], digest[32];
    char date8[9], expires[24];

    if (!st)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "sign: NULL state");
    aws_sigv4_state_clean(st);
    if (!check_inputs(req, cfg, err) || !crypto_ready(err))
        return false;

    const bool v4a = cfg->algorithm == AWS_SIGV4A_ECDSA_P256;
    const bool query_mode = cfg->mode == AWS_SIGV4_MODE_QUERY;
    const char *alg = v4a ? AWS_SIGV4A_ALGORITHM : AWS_SIGV4_ALGORITHM;
    const char *token =
        cfg->session_token && *cfg->session_token ? cfg->session_token : NULL;
    const bool sign_token = token && !cfg->omit_session_token;
    const char *path = req->path && *req->path ? req->path : "/";
    const char *query = req->query && *req->query ? req->query : NULL;

    if (query_mode && !check_query_free_of_auth(query, err))
        goto cleanup;
    if (!aws_sigv4_format_time(cfg->time, st->amz_date, err))
        goto cleanup;
    memcpy(date8, st->amz_date, 8);
    date8[8] = '\0';
    snprintf(expires, sizeof expires, "%lld", (long long)cfg->expires);

    /* Payload hash. */
    switch (req->payload_kind) {
    case AWS_SIGV4_PAYLOAD_BYTES:
        if (!sha256(req->payload ? req->payload : "", req->payload_len, digest, err))
            goto cleanup;
        for (int i = 0; i < 32; i++) {
            st->payload_hash[2 * i] = hexdigits[digest[i] >> 4];
            st->payload_hash[2 * i + 1] = hexdigits[digest[i] & 15];
        }
        st->payload_hash[64] = '\0';
        break;
    case AWS_SIGV4_PAYLOAD_HASH:
        snprintf(st->payload_hash, sizeof st->payload_hash, "%s", req->payload_hash);
        break;
    case AWS_SIGV4_PAYLOAD_UNSIGNED:
        snprintf(st->payload_hash, sizeof st->payload_hash, "%s", AWS_SIGV4_UNSIGNED_PAYLOAD);
        break;
    }

    /* Scope. */
    sb_adds(&tmp, date8);
    sb_addc(&tmp, '/');
    if (!v4a) {
        sb_adds(&tmp, cfg->region);
        sb_addc(&tmp, '/');
    }
    sb_adds(&tmp, cfg->service);
    sb_adds(&tmp, "/aws4_request");
    if (!(st->scope = sb_take(&tmp, err)))
        goto cleanup;
    if (token && !(st->owned_token_ = aws_strdup(token))) {
        aws_error_oom(err);
        goto cleanup;
    }
    if (v4a && !(st->owned_region_ = aws_strdup(cfg->region))) {
        aws_error_oom(err);
        goto cleanup;
    }

    /* Headers the signer adds to the canonical request, and the ones it
     * replaces (input copies are ignored). */
    aws_sigv4_header extra[4];
    size_t nextra = 0;
    const char *replaced[4];
    size_t nreplaced = 0;
    replaced[nreplaced++] = "x-amz-date";
    if (token)
        replaced[nreplaced++] = "x-amz-security-token";
    if (v4a)
        replaced[nreplaced++] = "x-amz-region-set";
    if (!query_mode) {
        extra[nextra++] = (aws_sigv4_header){"x-amz-date", st->amz_date};
        if (sign_token)
            extra[nextra++] = (aws_sigv4_header){"x-amz-security-token", token};
        if (v4a)
            extra[nextra++] = (aws_sigv4_header){"x-amz-region-set", cfg->region};
        if (cfg->add_content_sha256) {
            replaced[nreplaced++] = "x-amz-content-sha256";
            extra[nextra++] = (aws_sigv4_header){"x-amz-content-sha256", st->payload_hash};
        }
    }
    if (!canonical_headers(extra, nextra, req, replaced, nreplaced, &cheaders, &signed_h, err))
        goto cleanup;
    if (!(st->signed_headers = sb_take(&signed_h, err)))
        goto cleanup;

    /* Query mode: the auth parameters, in the order they are sent.  The
     * canonical query is computed over the input query plus the signed ones. */
    if (query_mode) {
        sbuf cred = {0};
        sb_adds(&cred, cfg->access_key);
        sb_addc(&cred, '/');
        sb_adds(&cred, st->scope);
        char *credential = sb_take(&cred, err);
        if (!credential)
            goto cleanup;
        sb_param(&url_q, "X-Amz-Algorithm", alg);
        sb_param(&url_q, "X-Amz-Credential", credential);
        sb_param(&url_q, "X-Amz-Date", st->amz_date);
        sb_param(&url_q, "X-Amz-SignedHeaders", st->signed_headers);
        sb_param(&url_q, "X-Amz-Expires", expires);
        aws_free(credential);
        /* query_in = input query & the signed auth params */
        if (query)
            sb_adds(&query_in, query);
        if (query_in.len)
            sb_addc(&query_in, '&');
        sb_add(&query_in, url_q.p ? url_q.p : "", url_q.len);
        if (token) {
            sb_param(&url_q, "X-Amz-Security-Token", token);
            if (sign_token)
                sb_param(&query_in, "X-Amz-Security-Token", token);
        }
        if (v4a) {
            sb_param(&url_q, "X-Amz-Region-Set", cfg->region);
            sb_param(&query_in, "X-Amz-Region-Set", cfg->region);
        }
        if (query_in.oom || url_q.oom) {
            aws_error_oom(err);
            goto cleanup;
        }
    } else if (query) {
        sb_adds(&query_in, query);
    }

    /* Canonical request. */
    sb_adds(&creq, req->method);
    sb_addc(&creq, '\n');
    sb_canonical_path(&creq, path, cfg->double_encode_path, cfg->normalize_path);
    sb_addc(&creq, '\n');
    if (!sb_canonical_query(&creq, query_in.p, err))
        goto cleanup;
    sb_addc(&creq, '\n');
    sb_add(&creq, cheaders.p, cheaders.len);
    sb_addc(&creq, '\n');
    sb_adds(&creq, st->signed_headers);
    sb_addc(&creq, '\n');
    sb_adds(&creq, st->payload_hash);
    if (!(st->canonical_request = sb_take(&creq, err)))
        goto cleanup;

    /* String to sign. */
    if (!sha256(st->canonical_request, strlen(st->canonical_request), digest, err))
        goto cleanup;
    sb_adds(&tmp, alg);
    sb_addc(&tmp, '\n');
    sb_adds(&tmp, st->amz_date);
    sb_addc(&tmp, '\n');
    sb_adds(&tmp, st->scope);
    sb_addc(&tmp, '\n');
    sb_hex(&tmp, digest, 32);
    if (!(st->string_to_sign = sb_take(&tmp, err)))
        goto cleanup;

    /* Signature. */
    size_t sts_len = strlen(st->string_to_sign);
    if (!v4a) {
        if (!v4_signing_key(cfg, date8, key, err) ||
            !hmac(key, 32, st->string_to_sign, sts_len, digest, err))
            goto cleanup;
        sb_hex(&tmp, digest, 32);
    } else {
        unsigned char der[80];
        size_t der_len = sizeof der;
        if (!(pkey = v4a_signing_key(cfg, err)))
            goto cleanup;
        if (!(md = EVP_MD_CTX_new()) ||
            EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) <= 0 ||
            EVP_DigestSign(md, der, &der_len, (const unsigned char *)st->string_to_sign,
                           sts_len) <= 0) {
            aws_error_set(err, AWS_ERR_CRYPTO, "SigV4a: ECDSA signing failed");
            goto cleanup;
        }
        sb_hex(&tmp, der, der_len);
    }
    if (!(st->signature = sb_take(&tmp, err)))
        goto cleanup;

    /* Results. */
    if (query_mode) {
        if (query)
            sb_adds(&tmp, query);
        if (tmp.len)
            sb_addc(&tmp, '&');
        sb_add(&tmp, url_q.p, url_q.len);
        sb_adds(&tmp, "&X-Amz-Signature=");
        sb_adds(&tmp, st->signature);
        if (!(st->query = sb_take(&tmp, err)))
            goto cleanup;
    } else {
        sb_adds(&tmp, alg);
        sb_adds(&tmp, " Credential=");
        sb_adds(&tmp, cfg->access_key);
        sb_addc(&tmp, '/');
        sb_adds(&tmp, st->scope);
        sb_adds(&tmp, ", SignedHeaders=");
        sb_adds(&tmp, st->signed_headers);
        sb_adds(&tmp, ", Signature=");
        sb_adds(&tmp, st->signature);
        if (!(st->authorization = sb_take(&tmp, err)))
            goto cleanup;
        size_t h = 0;
        if (token)
            st->headers[h++] = (aws_sigv4_header){"X-Amz-Security-Token", st->owned_token_};
        st->headers[h++] = (aws_sigv4_header){"X-Amz-Date", st->amz_date};
        if (v4a)
            st->headers[h++] = (aws_sigv4_header){"X-Amz-Region-Set", st->owned_region_};
        if (cfg->add_content_sha256)
            st->headers[h++] = (aws_sigv4_header){"x-amz-content-sha256", st->payload_hash};
        st->headers[h++] = (aws_sigv4_header){"Authorization", st->authorization};
        st->header_count = h;
    }
    ok = true;
cleanup:
    OPENSSL_cleanse(key, sizeof key);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    sb_free(&creq);
    sb_free(&cheaders);
    sb_free(&signed_h);
    sb_free(&query_in);
    sb_free(&url_q);
    sb_free(&tmp);
    if (!ok)
        aws_sigv4_state_clean(st);
    return ok;
}
