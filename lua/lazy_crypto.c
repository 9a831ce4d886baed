/*
 * lazy_crypto: the OpenSSL libcrypto functions lumu uses (lua/l_crypto.c,
 * aws/sigv4.c, aws/codec.c), forwarded to libcrypto.so.3 loaded on first use
 * (see lazylib.h).  Callers check availability first.  libssl is not used
 * directly (libcurl loads it itself).
 */
#include "lazylib.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#define CRYPTO_SYMBOLS(X)                                                                \
    X(BN_CTX_free)                                                                       \
    X(BN_CTX_new)                                                                        \
    X(BN_add_word)                                                                       \
    X(BN_bin2bn)                                                                         \
    X(BN_clear_free)                                                                     \
    X(BN_cmp)                                                                            \
    X(BN_copy)                                                                           \
    X(BN_free)                                                                           \
    X(BN_new)                                                                            \
    X(BN_secure_new)                                                                     \
    X(BN_sub_word)                                                                       \
    X(CRYPTO_memcmp)                                                                     \
    X(EC_GROUP_free)                                                                     \
    X(EC_GROUP_get0_order)                                                               \
    X(EC_GROUP_new_by_curve_name)                                                        \
    X(EC_POINT_free)                                                                     \
    X(EC_POINT_mul)                                                                      \
    X(EC_POINT_new)                                                                      \
    X(EC_POINT_point2oct)                                                                \
    X(ERR_clear_error)                                                                   \
    X(ERR_error_string_n)                                                                \
    X(ERR_get_error)                                                                     \
    X(EVP_Digest)                                                                        \
    X(EVP_DigestFinal_ex)                                                                \
    X(EVP_DigestInit_ex)                                                                 \
    X(EVP_DigestSign)                                                                    \
    X(EVP_DigestSignInit)                                                                \
    X(EVP_DigestUpdate)                                                                  \
    X(EVP_DigestVerify)                                                                  \
    X(EVP_DigestVerifyInit)                                                              \
    X(EVP_MD_CTX_free)                                                                   \
    X(EVP_MD_CTX_new)                                                                    \
    X(EVP_MD_get0_name)                                                                  \
    X(EVP_PKEY_CTX_free)                                                                 \
    X(EVP_PKEY_CTX_new_from_name)                                                        \
    X(EVP_PKEY_free)                                                                     \
    X(EVP_PKEY_fromdata)                                                                 \
    X(EVP_PKEY_fromdata_init)                                                            \
    X(EVP_PKEY_get_octet_string_param)                                                   \
    X(EVP_PKEY_up_ref)                                                                   \
    X(EVP_get_digestbyname)                                                              \
    X(EVP_md5)                                                                           \
    X(EVP_sha1)                                                                          \
    X(EVP_sha256)                                                                        \
    X(HMAC)                                                                              \
    X(OPENSSL_cleanse)                                                                   \
    X(OSSL_PARAM_BLD_free)                                                               \
    X(OSSL_PARAM_BLD_new)                                                                \
    X(OSSL_PARAM_BLD_push_BN)                                                            \
    X(OSSL_PARAM_BLD_push_octet_string)                                                  \
    X(OSSL_PARAM_BLD_push_utf8_string)                                                   \
    X(OSSL_PARAM_BLD_to_param)                                                           \
    X(OSSL_PARAM_construct_end)                                                          \
    X(OSSL_PARAM_construct_octet_string)                                                 \
    X(OSSL_PARAM_construct_utf8_string)                                                  \
    X(OSSL_PARAM_free)                                                                   \
    X(RAND_bytes)

LUMU_LAZY_DEFINE(lumu_lazy_crypto, "crypto", "libcrypto.so.3", CRYPTO_SYMBOLS);

#define FN(name) LUMU_LAZY_FN(lumu_lazy_crypto, name)

/* bn.h */

LUMU_LAZY_SHIM void BN_CTX_free(BN_CTX *c)
{
    FN(BN_CTX_free)(c);
}

LUMU_LAZY_SHIM BN_CTX *BN_CTX_new(void)
{
    return FN(BN_CTX_new)();
}

LUMU_LAZY_SHIM int BN_add_word(BIGNUM *a, BN_ULONG w)
{
    return FN(BN_add_word)(a, w);
}

LUMU_LAZY_SHIM BIGNUM *BN_bin2bn(const unsigned char *s, int len, BIGNUM *ret)
{
    return FN(BN_bin2bn)(s, len, ret);
}

LUMU_LAZY_SHIM void BN_clear_free(BIGNUM *a)
{
    FN(BN_clear_free)(a);
}

LUMU_LAZY_SHIM int BN_cmp(const BIGNUM *a, const BIGNUM *b)
{
    return FN(BN_cmp)(a, b);
}

LUMU_LAZY_SHIM BIGNUM *BN_copy(BIGNUM *a, const BIGNUM *b)
{
    return FN(BN_copy)(a, b);
}

LUMU_LAZY_SHIM void BN_free(BIGNUM *a)
{
    FN(BN_free)(a);
}

LUMU_LAZY_SHIM BIGNUM *BN_new(void)
{
    return FN(BN_new)();
}

LUMU_LAZY_SHIM BIGNUM *BN_secure_new(void)
{
    return FN(BN_secure_new)();
}

LUMU_LAZY_SHIM int BN_sub_word(BIGNUM *a, BN_ULONG w)
{
    return FN(BN_sub_word)(a, w);
}

/* crypto.h */

LUMU_LAZY_SHIM int CRYPTO_memcmp(const void *in_a, const void *in_b, size_t len)
{
    return FN(CRYPTO_memcmp)(in_a, in_b, len);
}

LUMU_LAZY_SHIM void OPENSSL_cleanse(void *ptr, size_t len)
{
    FN(OPENSSL_cleanse)(ptr, len);
}

/* ec.h */

LUMU_LAZY_SHIM void EC_GROUP_free(EC_GROUP *group)
{
    FN(EC_GROUP_free)(group);
}

LUMU_LAZY_SHIM const BIGNUM *EC_GROUP_get0_order(const EC_GROUP *group)
{
    return FN(EC_GROUP_get0_order)(group);
}

LUMU_LAZY_SHIM EC_GROUP *EC_GROUP_new_by_curve_name(int nid)
{
    return FN(EC_GROUP_new_by_curve_name)(nid);
}

LUMU_LAZY_SHIM void EC_POINT_free(EC_POINT *point)
{
    FN(EC_POINT_free)(point);
}

LUMU_LAZY_SHIM int EC_POINT_mul(const EC_GROUP *group, EC_POINT *r, const BIGNUM *n,
                                const EC_POINT *q, const BIGNUM *m, BN_CTX *ctx)
{
    return FN(EC_POINT_mul)(group, r, n, q, m, ctx);
}

LUMU_LAZY_SHIM EC_POINT *EC_POINT_new(const EC_GROUP *group)
{
    return FN(EC_POINT_new)(group);
}

LUMU_LAZY_SHIM size_t EC_POINT_point2oct(const EC_GROUP *group, const EC_POINT *p,
                                         point_conversion_form_t form, unsigned char *buf,
                                         size_t len, BN_CTX *ctx)
{
    return FN(EC_POINT_point2oct)(group, p, form, buf, len, ctx);
}

/* err.h */

LUMU_LAZY_SHIM void ERR_clear_error(void)
{
    FN(ERR_clear_error)();
}

LUMU_LAZY_SHIM void ERR_error_string_n(unsigned long e, char *buf, size_t len)
{
    FN(ERR_error_string_n)(e, buf, len);
}

LUMU_LAZY_SHIM unsigned long ERR_get_error(void)
{
    return FN(ERR_get_error)();
}

/* evp.h */

LUMU_LAZY_SHIM int EVP_Digest(const void *data, size_t count, unsigned char *md,
                              unsigned int *size, const EVP_MD *type, ENGINE *impl)
{
    return FN(EVP_Digest)(data, count, md, size, type, impl);
}

LUMU_LAZY_SHIM int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *md, unsigned int *s)
{
    return FN(EVP_DigestFinal_ex)(ctx, md, s);
}

LUMU_LAZY_SHIM int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *type, ENGINE *impl)
{
    return FN(EVP_DigestInit_ex)(ctx, type, impl);
}

LUMU_LAZY_SHIM int EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sigret, size_t *siglen,
                                  const unsigned char *tbs, size_t tbslen)
{
    return FN(EVP_DigestSign)(ctx, sigret, siglen, tbs, tbslen);
}

LUMU_LAZY_SHIM int EVP_DigestSignInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type,
                                      ENGINE *e, EVP_PKEY *pkey)
{
    return FN(EVP_DigestSignInit)(ctx, pctx, type, e, pkey);
}

LUMU_LAZY_SHIM int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *d, size_t cnt)
{
    return FN(EVP_DigestUpdate)(ctx, d, cnt);
}

LUMU_LAZY_SHIM int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sigret, size_t siglen,
                                    const unsigned char *tbs, size_t tbslen)
{
    return FN(EVP_DigestVerify)(ctx, sigret, siglen, tbs, tbslen);
}

LUMU_LAZY_SHIM int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx,
                                        const EVP_MD *type, ENGINE *e, EVP_PKEY *pkey)
{
    return FN(EVP_DigestVerifyInit)(ctx, pctx, type, e, pkey);
}

LUMU_LAZY_SHIM void EVP_MD_CTX_free(EVP_MD_CTX *ctx)
{
    FN(EVP_MD_CTX_free)(ctx);
}

LUMU_LAZY_SHIM EVP_MD_CTX *EVP_MD_CTX_new(void)
{
    return FN(EVP_MD_CTX_new)();
}

LUMU_LAZY_SHIM const char *EVP_MD_get0_name(const EVP_MD *md)
{
    return FN(EVP_MD_get0_name)(md);
}

LUMU_LAZY_SHIM void EVP_PKEY_CTX_free(EVP_PKEY_CTX *ctx)
{
    FN(EVP_PKEY_CTX_free)(ctx);
}

LUMU_LAZY_SHIM EVP_PKEY_CTX *EVP_PKEY_CTX_new_from_name(OSSL_LIB_CTX *libctx, const char *name,
                                                        const char *propquery)
{
    return FN(EVP_PKEY_CTX_new_from_name)(libctx, name, propquery);
}

LUMU_LAZY_SHIM void EVP_PKEY_free(EVP_PKEY *pkey)
{
    FN(EVP_PKEY_free)(pkey);
}

LUMU_LAZY_SHIM int EVP_PKEY_fromdata(EVP_PKEY_CTX *ctx, EVP_PKEY **ppkey, int selection,
                                     OSSL_PARAM param[])
{
    return FN(EVP_PKEY_fromdata)(ctx, ppkey, selection, param);
}

LUMU_LAZY_SHIM int EVP_PKEY_fromdata_init(EVP_PKEY_CTX *ctx)
{
    return FN(EVP_PKEY_fromdata_init)(ctx);
}

LUMU_LAZY_SHIM int EVP_PKEY_get_octet_string_param(const EVP_PKEY *pkey, const char *key_name,
                                                   unsigned char *buf, size_t max_buf_sz,
                                                   size_t *out_sz)
{
    return FN(EVP_PKEY_get_octet_string_param)(pkey, key_name, buf, max_buf_sz, out_sz);
}

LUMU_LAZY_SHIM int EVP_PKEY_up_ref(EVP_PKEY *pkey)
{
    return FN(EVP_PKEY_up_ref)(pkey);
}

LUMU_LAZY_SHIM const EVP_MD *EVP_get_digestbyname(const char *name)
{
    return FN(EVP_get_digestbyname)(name);
}

LUMU_LAZY_SHIM const EVP_MD *EVP_md5(void)
{
    return FN(EVP_md5)();
}

LUMU_LAZY_SHIM const EVP_MD *EVP_sha1(void)
{
    return FN(EVP_sha1)();
}

LUMU_LAZY_SHIM const EVP_MD *EVP_sha256(void)
{
    return FN(EVP_sha256)();
}

/* hmac.h */

LUMU_LAZY_SHIM unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                                   const unsigned char *data, size_t data_len,
                                   unsigned char *md, unsigned int *md_len)
{
    return FN(HMAC)(evp_md, key, key_len, data, data_len, md, md_len);
}

/* params.h, param_build.h */

LUMU_LAZY_SHIM void OSSL_PARAM_BLD_free(OSSL_PARAM_BLD *bld)
{
    FN(OSSL_PARAM_BLD_free)(bld);
}

LUMU_LAZY_SHIM OSSL_PARAM_BLD *OSSL_PARAM_BLD_new(void)
{
    return FN(OSSL_PARAM_BLD_new)();
}

LUMU_LAZY_SHIM int OSSL_PARAM_BLD_push_BN(OSSL_PARAM_BLD *bld, const char *key, const BIGNUM *bn)
{
    return FN(OSSL_PARAM_BLD_push_BN)(bld, key, bn);
}

LUMU_LAZY_SHIM int OSSL_PARAM_BLD_push_octet_string(OSSL_PARAM_BLD *bld, const char *key,
                                                    const void *buf, size_t bsize)
{
    return FN(OSSL_PARAM_BLD_push_octet_string)(bld, key, buf, bsize);
}

LUMU_LAZY_SHIM int OSSL_PARAM_BLD_push_utf8_string(OSSL_PARAM_BLD *bld, const char *key,
                                                   const char *buf, size_t bsize)
{
    return FN(OSSL_PARAM_BLD_push_utf8_string)(bld, key, buf, bsize);
}

LUMU_LAZY_SHIM OSSL_PARAM *OSSL_PARAM_BLD_to_param(OSSL_PARAM_BLD *bld)
{
    return FN(OSSL_PARAM_BLD_to_param)(bld);
}

LUMU_LAZY_SHIM OSSL_PARAM OSSL_PARAM_construct_end(void)
{
    return FN(OSSL_PARAM_construct_end)();
}

LUMU_LAZY_SHIM OSSL_PARAM OSSL_PARAM_construct_octet_string(const char *key, void *buf,
                                                            size_t bsize)
{
    return FN(OSSL_PARAM_construct_octet_string)(key, buf, bsize);
}

LUMU_LAZY_SHIM OSSL_PARAM OSSL_PARAM_construct_utf8_string(const char *key, char *buf,
                                                           size_t bsize)
{
    return FN(OSSL_PARAM_construct_utf8_string)(key, buf, bsize);
}

LUMU_LAZY_SHIM void OSSL_PARAM_free(OSSL_PARAM *p)
{
    FN(OSSL_PARAM_free)(p);
}

/* rand.h */

LUMU_LAZY_SHIM int RAND_bytes(unsigned char *buf, int num)
{
    return FN(RAND_bytes)(buf, num);
}
