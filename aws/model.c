/* model: see model.h. */
#include "model.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Largest document accepted from disk or after inflating (ec2's model, the
 * biggest, is 2.8 MB with documentation; newer botocore ~4 MB). */
#define MODEL_MAX_BYTES ((size_t)256 << 20)

/* ------------------------------------------------------------------------
 * Inflating (zlib or gzip), through aws_malloc so the tracker sees it.
 * ---------------------------------------------------------------------- */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return aws_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    aws_free(p);
}

/* Inflates src (zlib or gzip stream, auto-detected) into a new buffer.
 * size_hint: expected output size (0 = unknown). */
static char *inflate_buf(const unsigned char *src, size_t n, size_t size_hint, size_t *out_len,
                         const char *what, aws_error *err)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    zs.zalloc = z_alloc;
    zs.zfree = z_free;
    if (inflateInit2(&zs, 15 + 32) != Z_OK)
        return aws_error_set(err, AWS_ERR_NO_MEMORY, "%s: cannot initialize zlib", what), NULL;
    size_t cap = size_hint ? size_hint + 1 : (n < MODEL_MAX_BYTES / 8 ? n * 8 + 64 : n);
    char *buf = aws_malloc(cap);
    size_t len = 0;
    int rc = Z_OK;
    if (!buf)
        goto oom;
    zs.next_in = (Bytef *)(uintptr_t)src;
    while (rc != Z_STREAM_END) {
        if (len == cap) {
            if (cap >= MODEL_MAX_BYTES) {
                aws_error_set(err, AWS_ERR_PARSE, "%s: inflates to more than %zu bytes", what,
                              MODEL_MAX_BYTES);
                goto fail;
            }
            size_t ncap = cap * 2 > MODEL_MAX_BYTES ? MODEL_MAX_BYTES : cap * 2;
            char *nb = aws_realloc(buf, ncap);
            if (!nb)
                goto oom;
            buf = nb;
            cap = ncap;
        }
        size_t in_left = n - (size_t)(zs.next_in - (const Bytef *)src);
        zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        size_t out_left = cap - len;
        zs.next_out = (Bytef *)buf + len;
        zs.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
        uInt before = zs.avail_out;
        rc = inflate(&zs, Z_NO_FLUSH);
        len += before - zs.avail_out;
        if (rc == Z_MEM_ERROR)
            goto oom;
        if (rc == Z_BUF_ERROR && zs.avail_out != 0) {
            aws_error_set(err, AWS_ERR_PARSE, "%s: truncated compressed data", what);
            goto fail;
        }
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
            aws_error_set(err, AWS_ERR_PARSE, "%s: corrupt compressed data (%s)", what,
                          zs.msg ? zs.msg : "inflate failed");
            goto fail;
        }
    }
    inflateEnd(&zs);
    *out_len = len;
    return buf;
oom:
    aws_error_oom(err);
fail:
    inflateEnd(&zs);
    aws_free(buf);
    return NULL;
}

static json_t *parse_json(const char *buf, size_t len, const char *what, aws_error *err)
{
    json_error_t jerr;
    json_t *doc = json_loadb(buf, len, 0, &jerr);
    if (!doc) {
        if ((json_error_code(&jerr) == json_error_out_of_memory || !jerr.text[0]))
            return aws_error_oom(err), NULL;
        aws_error_set(err, AWS_ERR_PARSE, "%s: invalid JSON at line %d: %s", what, jerr.line,
                      jerr.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        aws_error_set(err, AWS_ERR_PARSE, "%s: not a JSON object", what);
        return NULL;
    }
    return doc;
}

/* ------------------------------------------------------------------------
 * Documents: LUMU_MODELS_DIR, then the embedded table.
 * ---------------------------------------------------------------------- */

static const aws_model_blob *find_blob(const char *service, const char *kind)
{
    for (const aws_model_blob *b = aws_model_embedded; b->kind; b++)
        if (!strcmp(b->service, service ? service : "") && !strcmp(b->kind, kind))
            return b;
    return NULL;
}

size_t aws_model_service_count(void)
{
    size_t n = 0;
    const char *prev = "";
    for (const aws_model_blob *b = aws_model_embedded; b->kind; b++)
        if (*b->service && strcmp(b->service, prev)) {
            n++;
            prev = b->service;
        }
    return n;
}

const char *aws_model_service_name(size_t i)
{
    size_t n = 0;
    const char *prev = "";
    for (const aws_model_blob *b = aws_model_embedded; b->kind; b++)
        if (*b->service && strcmp(b->service, prev)) {
            if (n++ == i)
                return b->service;
            prev = b->service;
        }
    return NULL;
}

/* A name usable as one path component. */
static bool safe_component(const char *s)
{
    if (!s || !*s || !strcmp(s, ".") || !strcmp(s, ".."))
        return false;
    for (; *s; s++)
        if (*s == '/')
            return false;
    return true;
}

/* Newest (greatest) api-version directory of dir, into out; false if none. */
static bool newest_version_dir(const char *dir, char out[32])
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strlen(e->d_name) >= 32)
            continue;
        char path[PATH_MAX];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (!found || strcmp(e->d_name, out) > 0) {
            memcpy(out, e->d_name, strlen(e->d_name) + 1); /* < 32, checked above */
            found = true;
        }
    }
    closedir(d);
    return found;
}

/* Reads a whole file; NULL + errno ENOENT when absent (err untouched). */
static char *read_file(const char *path, size_t *len, aws_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno != ENOENT)
            aws_error_set(err, AWS_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = aws_malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap >= MODEL_MAX_BYTES) {
                aws_free(buf);
                fclose(f);
                aws_error_set(err, AWS_ERR_PARSE, "%s: larger than %zu bytes", path,
                              MODEL_MAX_BYTES);
                errno = EFBIG;
                return NULL;
            }
            char *nb = aws_realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (!buf) {
        fclose(f);
        aws_error_oom(err);
        errno = ENOMEM;
        return NULL;
    }
    if (ferror(f)) {
        int e = errno;
        aws_free(buf);
        fclose(f);
        aws_error_set(err, AWS_ERR_IO, "%s: %s", path, strerror(e));
        errno = EIO;
        return NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Tries DIR/<rel>.json then DIR/<rel>.json.gz.  *found tells whether a file
 * existed; NULL with *found = true is an error (err set). */
static json_t *load_from_dir(const char *base, bool *found, aws_error *err)
{
    char path[PATH_MAX];
    *found = false;
    for (int gz = 0; gz < 2; gz++) {
        if (snprintf(path, sizeof path, "%s.json%s", base, gz ? ".gz" : "") >= (int)sizeof path)
            return aws_error_set(err, AWS_ERR_INVALID_ARG, "path too long: %s", base), NULL;
        size_t len = 0;
        aws_error local;
        aws_error_clear(&local);
        errno = 0;
        char *buf = read_file(path, &len, &local);
        if (!buf) {
            if (local.code != AWS_ERR_NONE) {
                *found = true;
                if (err)
                    *err = local;
                return NULL;
            }
            continue; /* absent */
        }
        *found = true;
        json_t *doc = NULL;
        if (gz) {
            size_t ilen = 0;
            char *inflated = inflate_buf((const unsigned char *)buf, len, 0, &ilen, path, err);
            aws_free(buf);
            if (!inflated)
                return NULL;
            doc = parse_json(inflated, ilen, path, err);
            aws_free(inflated);
        } else {
            doc = parse_json(buf, len, path, err);
            aws_free(buf);
        }
        return doc;
    }
    return NULL;
}

json_t *aws_model_document(const char *service, const char *kind, char api_version[32],
                           aws_error *err)
{
    if (api_version)
        api_version[0] = '\0';
    if (!safe_component(kind) || (service && !safe_component(service)))
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "invalid model name %s/%s",
                             service ? service : "", kind ? kind : "(null)"),
               NULL;
    char what[160];
    snprintf(what, sizeof what, "%s%s%s", service ? service : "", service ? "/" : "", kind);

    const char *dir = getenv("LUMU_MODELS_DIR");
    if (dir && *dir) {
        char base[PATH_MAX];
        char version[32] = "";
        bool usable = true;
        if (service) {
            char sdir[PATH_MAX];
            if (snprintf(sdir, sizeof sdir, "%s/%s", dir, service) >= (int)sizeof sdir ||
                !newest_version_dir(sdir, version))
                usable = false;
            else if (snprintf(base, sizeof base, "%s/%s/%s", sdir, version, kind) >=
                     (int)sizeof base)
                usable = false;
        } else if (snprintf(base, sizeof base, "%s/%s", dir, kind) >= (int)sizeof base) {
            usable = false;
        }
        if (usable) {
            bool found = false;
            json_t *doc = load_from_dir(base, &found, err);
            if (found) {
                if (doc && api_version)
                    snprintf(api_version, 32, "%s", version);
                return doc;
            }
        }
    }

    const aws_model_blob *b = find_blob(service, kind);
    if (!b)
        return NULL; /* absent: err untouched */
    size_t len = 0;
    char *buf = inflate_buf(b->zdata, b->zsize, b->size, &len, what, err);
    if (!buf)
        return NULL;
    json_t *doc = parse_json(buf, len, what, err);
    aws_free(buf);
    if (doc && api_version)
        snprintf(api_version, 32, "%s", b->api_version);
    return doc;
}

/* ------------------------------------------------------------------------
 * Compiling a service-2 document.
 * ---------------------------------------------------------------------- */

static const char *jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s;
}

static bool jtrue(const json_t *obj, const char *key)
{
    return json_is_true(json_object_get(obj, key));
}

static int cmp_shape(const void *a, const void *b)
{
    return strcmp(((const aws_shape *)a)->name, ((const aws_shape *)b)->name);
}

static int cmp_operation(const void *a, const void *b)
{
    return strcmp(((const aws_operation *)a)->name, ((const aws_operation *)b)->name);
}

const aws_shape *aws_model_shape(const aws_model *m, const char *name)
{
    if (!m || !name || !m->shape_count)
        return NULL;
    aws_shape key = {.name = name};
    return bsearch(&key, m->shapes, m->shape_count, sizeof *m->shapes, cmp_shape);
}

const aws_operation *aws_model_operation(const aws_model *m, const char *name)
{
    if (!m || !name || !m->operation_count)
        return NULL;
    aws_operation key = {.name = name};
    return bsearch(&key, m->operations, m->operation_count, sizeof *m->operations,
                   cmp_operation);
}

const aws_member *aws_shape_member(const aws_shape *s, const char *name)
{
    if (!s || !name)
        return NULL;
    for (size_t i = 0; i < s->member_count; i++)
        if (!strcmp(s->members[i].name, name))
            return &s->members[i];
    return NULL;
}

const char *aws_member_wire_name(const aws_member *mb)
{
    return mb->location_name ? mb->location_name : mb->name;
}

const char *aws_shape_type_name(aws_shape_type t)
{
    static const char *const names[] = {
        [AWS_SHAPE_STRUCTURE] = "structure", [AWS_SHAPE_LIST] = "list",
        [AWS_SHAPE_MAP] = "map",             [AWS_SHAPE_STRING] = "string",
        [AWS_SHAPE_BLOB] = "blob",           [AWS_SHAPE_BOOLEAN] = "boolean",
        [AWS_SHAPE_BYTE] = "byte",           [AWS_SHAPE_SHORT] = "short",
        [AWS_SHAPE_INTEGER] = "integer",     [AWS_SHAPE_LONG] = "long",
        [AWS_SHAPE_FLOAT] = "float",         [AWS_SHAPE_DOUBLE] = "double",
        [AWS_SHAPE_TIMESTAMP] = "timestamp", [AWS_SHAPE_BIGINTEGER] = "bigInteger",
        [AWS_SHAPE_BIGDECIMAL] = "bigDecimal",
    };
    if ((unsigned)t >= sizeof names / sizeof names[0])
        return "unknown";
    return names[t];
}

static bool parse_type(const char *s, aws_shape_type *t)
{
    static const struct {
        const char *name;
        aws_shape_type type;
    } types[] = {
        {"structure", AWS_SHAPE_STRUCTURE}, {"list", AWS_SHAPE_LIST},
        {"map", AWS_SHAPE_MAP},             {"string", AWS_SHAPE_STRING},
        {"character", AWS_SHAPE_STRING},    {"blob", AWS_SHAPE_BLOB},
        {"boolean", AWS_SHAPE_BOOLEAN},     {"byte", AWS_SHAPE_BYTE},
        {"short", AWS_SHAPE_SHORT},         {"integer", AWS_SHAPE_INTEGER},
        {"long", AWS_SHAPE_LONG},           {"float", AWS_SHAPE_FLOAT},
        {"double", AWS_SHAPE_DOUBLE},       {"timestamp", AWS_SHAPE_TIMESTAMP},
        {"bigInteger", AWS_SHAPE_BIGINTEGER}, {"bigDecimal", AWS_SHAPE_BIGDECIMAL},
    };
    if (!s)
        return false;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(types[i].name, s)) {
            *t = types[i].type;
            return true;
        }
    return false;
}

static aws_location parse_location(const char *s)
{
    if (!s)
        return AWS_LOC_BODY;
    if (!strcmp(s, "uri"))
        return AWS_LOC_URI;
    if (!strcmp(s, "querystring"))
        return AWS_LOC_QUERYSTRING;
    if (!strcmp(s, "header"))
        return AWS_LOC_HEADER;
    if (!strcmp(s, "headers"))
        return AWS_LOC_HEADERS;
    if (!strcmp(s, "statusCode"))
        return AWS_LOC_STATUSCODE;
    return AWS_LOC_BODY;
}

/* xmlNamespace: "uri" or {"uri": ..., "prefix": ...}. */
static void parse_ns(const json_t *obj, const char **uri, const char **prefix)
{
    const json_t *ns = json_object_get(obj, "xmlNamespace");
    if (json_is_string(ns)) {
        *uri = json_string_value(ns);
        *prefix = NULL;
    } else if (json_is_object(ns)) {
        *uri = jstr(ns, "uri");
        *prefix = jstr(ns, "prefix");
    }
}

static void shape_ref_defaults(aws_shape *s);

/* Shape-level attributes (pass 1: no references followed). */
static bool compile_shape_attrs(aws_shape *s, aws_error *err)
{
    json_t *o = s->raw;
    if (!json_is_object(o))
        return aws_error_set(err, AWS_ERR_PARSE, "shape %s: not an object", s->name);
    s->type_name = jstr(o, "type");
    if (!parse_type(s->type_name, &s->type))
        return aws_error_set(err, AWS_ERR_PARSE, "shape %s: unknown type %s", s->name,
                             s->type_name ? s->type_name : "(none)");
    unsigned f = 0;
    if (jtrue(o, "exception"))
        f |= AWS_SF_EXCEPTION;
    if (jtrue(o, "fault"))
        f |= AWS_SF_FAULT;
    if (jtrue(o, "union"))
        f |= AWS_SF_UNION;
    if (jtrue(o, "document"))
        f |= AWS_SF_DOCUMENT;
    if (jtrue(o, "eventstream"))
        f |= AWS_SF_EVENTSTREAM;
    if (jtrue(o, "event"))
        f |= AWS_SF_EVENT;
    if (jtrue(o, "streaming"))
        f |= AWS_SF_STREAMING;
    if (jtrue(o, "sensitive"))
        f |= AWS_SF_SENSITIVE;
    if (jtrue(o, "flattened"))
        f |= AWS_SF_FLATTENED;
    json_t *e = json_object_get(o, "error");
    if (json_is_object(e)) {
        s->error_code = jstr(e, "code");
        json_t *st = json_object_get(e, "httpStatusCode");
        if (json_is_integer(st))
            s->error_status = (int)json_integer_value(st);
        if (jtrue(e, "senderFault"))
            f |= AWS_SF_SENDER_FAULT;
    }
    s->flags = f;
    s->location_name = jstr(o, "locationName");
    s->timestamp_format = jstr(o, "timestampFormat");
    parse_ns(o, &s->xml_ns_uri, &s->xml_ns_prefix);
    shape_ref_defaults(s);
    return true;
}

static const struct {
    const char *key;
    unsigned flag;
} s_member_flags[] = {
    {"xmlAttribute", AWS_MF_XML_ATTRIBUTE},         {"flattened", AWS_MF_FLATTENED},
    {"idempotencyToken", AWS_MF_IDEMPOTENCY_TOKEN}, {"hostLabel", AWS_MF_HOST_LABEL},
    {"jsonvalue", AWS_MF_JSONVALUE},                {"eventpayload", AWS_MF_EVENTPAYLOAD},
    {"eventheader", AWS_MF_EVENTHEADER},            {"streaming", AWS_MF_STREAMING},
    {"deprecated", AWS_MF_DEPRECATED},
};

/* Applies one serialization attribute (key: value) to mb; the reference's
 * own value wins over the shape's, so "false" clears a flag. */
static void apply_attr(aws_member *mb, const char *k, json_t *v)
{
    switch (k[0]) {
    case 'l':
        if (!strcmp(k, "location"))
            mb->location = parse_location(json_string_value(v));
        else if (!strcmp(k, "locationName") && json_is_string(v))
            mb->location_name = json_string_value(v);
        return;
    case 'q':
        if (!strcmp(k, "queryName") && json_is_string(v))
            mb->query_name = json_string_value(v);
        return;
    case 't':
        if (!strcmp(k, "timestampFormat") && json_is_string(v))
            mb->timestamp_format = json_string_value(v);
        return;
    case 'r':
        if (!strcmp(k, "resultWrapper") && json_is_string(v))
            mb->result_wrapper = json_string_value(v);
        return;
    case 's':
        if (!strcmp(k, "shape"))
            return;
        break;
    default:
        break;
    }
    if (!strcmp(k, "xmlNamespace")) {
        if (json_is_string(v)) {
            mb->xml_ns_uri = json_string_value(v);
            mb->xml_ns_prefix = NULL;
        } else if (json_is_object(v)) {
            mb->xml_ns_uri = jstr(v, "uri");
            mb->xml_ns_prefix = jstr(v, "prefix");
        }
        return;
    }
    for (size_t i = 0; i < sizeof s_member_flags / sizeof s_member_flags[0]; i++)
        if (!strcmp(k, s_member_flags[i].key)) {
            if (json_is_true(v))
                mb->flags |= s_member_flags[i].flag;
            else
                mb->flags &= ~s_member_flags[i].flag;
            return;
        }
}

/* The attributes every reference to s starts from (pass 1). */
static void shape_ref_defaults(aws_shape *s)
{
    aws_member *d = &s->ref_defaults_;
    memset(d, 0, sizeof *d);
    d->shape = s;
    const char *k;
    json_t *v;
    json_object_foreach(s->raw, k, v)
    {
        if (strcmp(k, "type") && strcmp(k, "members") && strcmp(k, "member") &&
            strcmp(k, "key") && strcmp(k, "value"))
            apply_attr(d, k, v);
    }
}

/* Fills mb from a shape reference ref ({"shape": ..., overrides...}). */
static bool compile_ref(const aws_model *m, aws_member *mb, const char *name, json_t *ref,
                        const char *owner, aws_error *err)
{
    if (!name)
        name = "?";
    if (!json_is_object(ref))
        return aws_error_set(err, AWS_ERR_PARSE, "%s.%s: not a shape reference", owner, name);
    const char *target = jstr(ref, "shape");
    const aws_shape *s = aws_model_shape(m, target);
    if (!s)
        return aws_error_set(err, AWS_ERR_PARSE, "%s.%s: unknown shape %s", owner, name,
                             target ? target : "(none)");
    *mb = s->ref_defaults_;
    mb->name = name;
    mb->raw = ref;
    const char *k;
    json_t *v;
    json_object_foreach(ref, k, v)
    {
        apply_attr(mb, k, v);
    }
    return true;
}

/* Members of structures, list/map parts (pass 2). */
static bool compile_shape_refs(const aws_model *m, aws_shape *s, aws_error *err)
{
    json_t *o = s->raw;
    switch (s->type) {
    case AWS_SHAPE_STRUCTURE: {
        json_t *members = json_object_get(o, "members");
        if (members && !json_is_object(members))
            return aws_error_set(err, AWS_ERR_PARSE, "shape %s: members is not an object",
                                 s->name);
        size_t n = json_object_size(members);
        if (n) {
            s->members = aws_calloc(n, sizeof *s->members);
            if (!s->members)
                return aws_error_oom(err);
        }
        const char *key;
        json_t *ref;
        json_object_foreach(members, key, ref)
        {
            if (!compile_ref(m, &s->members[s->member_count], key, ref, s->name, err))
                return false;
            s->member_count++;
        }
        json_t *req = json_object_get(o, "required");
        size_t i;
        json_t *v;
        json_array_foreach(req, i, v)
        {
            const aws_member *mb = aws_shape_member(s, json_string_value(v));
            if (mb)
                ((aws_member *)mb)->flags |= AWS_MF_REQUIRED;
        }
        const char *payload = jstr(o, "payload");
        if (payload) {
            s->payload = aws_shape_member(s, payload);
            if (!s->payload)
                return aws_error_set(err, AWS_ERR_PARSE, "shape %s: unknown payload member %s",
                                     s->name, payload);
        }
        return true;
    }
    case AWS_SHAPE_LIST:
        return compile_ref(m, &s->member, "member", json_object_get(o, "member"), s->name, err);
    case AWS_SHAPE_MAP:
        return compile_ref(m, &s->key, "key", json_object_get(o, "key"), s->name, err) &&
               compile_ref(m, &s->value, "value", json_object_get(o, "value"), s->name, err);
    default:
        return true;
    }
}

static aws_protocol parse_protocol(const char *s)
{
    if (!s)
        return AWS_PROTOCOL_UNKNOWN;
    if (!strcmp(s, "query"))
        return AWS_PROTOCOL_QUERY;
    if (!strcmp(s, "ec2"))
        return AWS_PROTOCOL_EC2;
    if (!strcmp(s, "json"))
        return AWS_PROTOCOL_JSON;
    if (!strcmp(s, "rest-json"))
        return AWS_PROTOCOL_REST_JSON;
    if (!strcmp(s, "rest-xml"))
        return AWS_PROTOCOL_REST_XML;
    return AWS_PROTOCOL_UNKNOWN;
}

static bool compile_metadata(aws_model *m, aws_error *err)
{
    json_t *md = json_object_get(m->root, "metadata");
    if (!json_is_object(md))
        return aws_error_set(err, AWS_ERR_PARSE, "model has no metadata");
    m->metadata = md;
    m->protocol_name = jstr(md, "protocol");
    m->protocol = parse_protocol(m->protocol_name);
    /* Newer models list alternatives in "protocols" (in priority order): use
     * the first one implemented here. */
    json_t *list = json_object_get(md, "protocols");
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        aws_protocol p = parse_protocol(json_string_value(v));
        if (p != AWS_PROTOCOL_UNKNOWN) {
            m->protocol = p;
            m->protocol_name = json_string_value(v);
            break;
        }
    }
    m->api_version = jstr(md, "apiVersion");
    m->json_version = jstr(md, "jsonVersion");
    m->target_prefix = jstr(md, "targetPrefix");
    m->endpoint_prefix = jstr(md, "endpointPrefix");
    m->signing_name = jstr(md, "signingName");
    if (!m->signing_name)
        m->signing_name = m->endpoint_prefix;
    m->signature_version = jstr(md, "signatureVersion");
    m->service_id = jstr(md, "serviceId");
    m->global_endpoint = jstr(md, "globalEndpoint");
    m->query_compatible = json_object_get(md, "awsQueryCompatible") != NULL;
    return true;
}

/* The payload member of an operation's input/output reference. */
static bool ref_payload(aws_member *ref, aws_error *err)
{
    const char *name = jstr(ref->raw, "payload");
    if (!name) {
        ref->payload = ref->shape->payload;
        return true;
    }
    ref->payload = aws_shape_member(ref->shape, name);
    if (!ref->payload)
        return aws_error_set(err, AWS_ERR_PARSE, "%s: unknown payload member %s", ref->name, name);
    return true;
}

static bool compile_operation(aws_model *m, aws_operation *op, aws_member *refs, aws_error *err)
{
    json_t *o = op->raw;
    if (!json_is_object(o))
        return aws_error_set(err, AWS_ERR_PARSE, "operation %s: not an object", op->name);
    json_t *http = json_object_get(o, "http");
    op->http_method = jstr(http, "method");
    if (!op->http_method)
        op->http_method = "POST";
    op->request_uri = jstr(http, "requestUri");
    if (!op->request_uri)
        op->request_uri = "/";
    json_t *rc = json_object_get(http, "responseCode");
    if (json_is_integer(rc))
        op->response_code = (int)json_integer_value(rc);
    json_t *in = json_object_get(o, "input"), *out = json_object_get(o, "output");
    if (in) {
        if (!compile_ref(m, &refs[0], jstr(in, "shape"), in, op->name, err) ||
            !ref_payload(&refs[0], err))
            return false;
        op->input = &refs[0];
    }
    if (out) {
        if (!compile_ref(m, &refs[1], jstr(out, "shape"), out, op->name, err) ||
            !ref_payload(&refs[1], err))
            return false;
        op->output = &refs[1];
    }
    json_t *errors = json_object_get(o, "errors");
    size_t n = json_array_size(errors);
    if (n) {
        op->errors = aws_calloc(n, sizeof *op->errors);
        if (!op->errors)
            return aws_error_oom(err);
        size_t i;
        json_t *ref;
        json_array_foreach(errors, i, ref)
        {
            const aws_shape *s = aws_model_shape(m, jstr(ref, "shape"));
            if (!s)
                return aws_error_set(err, AWS_ERR_PARSE, "operation %s: unknown error shape %s",
                                     op->name, jstr(ref, "shape") ? jstr(ref, "shape") : "");
            op->errors[op->error_count++] = s;
        }
    }
    op->host_prefix = jstr(json_object_get(o, "endpoint"), "hostPrefix");
    op->auth_type = jstr(o, "authtype");
    op->http_checksum_required = jtrue(o, "httpChecksumRequired") ||
                                 jtrue(json_object_get(o, "httpChecksum"),
                                       "requestChecksumRequired");
    op->idempotent = jtrue(o, "idempotent");
    op->deprecated = jtrue(o, "deprecated");
    return true;
}

void aws_model_free(aws_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->shape_count; i++)
        aws_free(m->shapes[i].members);
    aws_free(m->shapes);
    for (size_t i = 0; i < m->operation_count; i++)
        aws_free((void *)m->operations[i].errors);
    aws_free(m->operations);
    aws_free(m->refs_);
    aws_free(m->service_owned_);
    json_decref(m->paginators_);
    json_decref(m->waiters_);
    json_decref(m->root);
    aws_free(m);
}

aws_model *aws_model_from_json(json_t *doc, aws_error *err)
{
    if (!json_is_object(doc))
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "model document is not an object"), NULL;
    aws_model *m = aws_calloc(1, sizeof *m);
    if (!m)
        return aws_error_oom(err), NULL;
    m->service = "";
    m->root = json_incref(doc);
    if (!compile_metadata(m, err))
        goto fail;

    json_t *shapes = json_object_get(doc, "shapes");
    json_t *ops = json_object_get(doc, "operations");
    if ((shapes && !json_is_object(shapes)) || (ops && !json_is_object(ops))) {
        aws_error_set(err, AWS_ERR_PARSE, "model: shapes/operations must be objects");
        goto fail;
    }
    size_t ns = json_object_size(shapes), no = json_object_size(ops);
    if (ns && !(m->shapes = aws_calloc(ns, sizeof *m->shapes)))
        goto oom;
    if (no && (!(m->operations = aws_calloc(no, sizeof *m->operations)) ||
               !(m->refs_ = aws_calloc(2 * no, sizeof *m->refs_))))
        goto oom;
    const char *key;
    json_t *v;
    json_object_foreach(shapes, key, v)
    {
        m->shapes[m->shape_count].name = key;
        m->shapes[m->shape_count].raw = v;
        m->shape_count++;
    }
    if (m->shape_count)
        qsort(m->shapes, m->shape_count, sizeof *m->shapes, cmp_shape);
    for (size_t i = 0; i < m->shape_count; i++)
        if (!compile_shape_attrs(&m->shapes[i], err))
            goto fail;
    for (size_t i = 0; i < m->shape_count; i++)
        if (!compile_shape_refs(m, &m->shapes[i], err))
            goto fail;
    json_object_foreach(ops, key, v)
    {
        m->operations[m->operation_count].name = key;
        m->operations[m->operation_count].raw = v;
        m->operation_count++;
    }
    if (m->operation_count)
        qsort(m->operations, m->operation_count, sizeof *m->operations, cmp_operation);
    for (size_t i = 0; i < m->operation_count; i++)
        if (!compile_operation(m, &m->operations[i], &m->refs_[2 * i], err))
            goto fail;
    return m;
oom:
    aws_error_oom(err);
fail:
    aws_model_free(m);
    return NULL;
}

aws_model *aws_model_load(const char *service, aws_error *err)
{
    if (!service || !*service)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "no service name"), NULL;
    aws_error local;
    aws_error_clear(&local);
    json_t *doc = aws_model_document(service, "service-2", NULL, &local);
    if (!doc) {
        if (local.code == AWS_ERR_NONE)
            aws_error_set(err, AWS_ERR_INVALID_ARG, "unknown service %s (no model embedded%s)",
                          service, getenv("LUMU_MODELS_DIR") ? " or in LUMU_MODELS_DIR" : "");
        else if (err)
            *err = local;
        return NULL;
    }
    aws_model *m = aws_model_from_json(doc, err);
    json_decref(doc);
    if (!m)
        return NULL;
    if (!(m->service_owned_ = aws_strdup(service))) {
        aws_model_free(m);
        return aws_error_oom(err), NULL;
    }
    m->service = m->service_owned_;
    return m;
}

/* ------------------------------------------------------------------------
 * Cache
 * ---------------------------------------------------------------------- */

typedef struct cache_entry {
    struct cache_entry *next;
    aws_model *model;
} cache_entry;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_entry *s_cache;

const aws_model *aws_model_get(const char *service, aws_error *err)
{
    if (!service || !*service)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "no service name"), NULL;
    pthread_mutex_lock(&s_lock);
    for (cache_entry *e = s_cache; e; e = e->next)
        if (!strcmp(e->model->service, service)) {
            pthread_mutex_unlock(&s_lock);
            return e->model;
        }
    /* Loading under the lock: two threads asking for the same model load it
     * once; loads take tens of milliseconds at most. */
    aws_model *m = aws_model_load(service, err);
    cache_entry *e = m ? aws_malloc(sizeof *e) : NULL;
    if (m && !e) {
        aws_model_free(m);
        m = NULL;
        aws_error_oom(err);
    }
    if (e) {
        e->model = m;
        e->next = s_cache;
        s_cache = e;
    }
    pthread_mutex_unlock(&s_lock);
    return m;
}

void aws_model_cache_clear(void)
{
    pthread_mutex_lock(&s_lock);
    cache_entry *e = s_cache;
    s_cache = NULL;
    pthread_mutex_unlock(&s_lock);
    while (e) {
        cache_entry *next = e->next;
        aws_model_free(e->model);
        aws_free(e);
        e = next;
    }
}

/* ------------------------------------------------------------------------
 * Paginators and waiters (loaded on first use, under the cache lock)
 * ---------------------------------------------------------------------- */

static bool load_extras(aws_model *m, aws_error *err)
{
    if (m->extras_loaded_ || !*m->service)
        return true;
    aws_error local;
    aws_error_clear(&local);
    json_t *p = aws_model_document(m->service, "paginators-1", NULL, &local);
    if (!p && local.code != AWS_ERR_NONE) {
        if (err)
            *err = local;
        return false;
    }
    json_t *w = aws_model_document(m->service, "waiters-2", NULL, &local);
    if (!w && local.code != AWS_ERR_NONE) {
        json_decref(p);
        if (err)
            *err = local;
        return false;
    }
    m->paginators_ = p;
    m->waiters_ = w;
    m->extras_loaded_ = 1;
    return true;
}

static json_t *extras_get(const aws_model *cm, bool waiters, const char *name, aws_error *err)
{
    aws_model *m = (aws_model *)cm; /* the private, lazily filled fields only */
    if (!m)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "no model"), NULL;
    pthread_mutex_lock(&s_lock);
    bool ok = load_extras(m, err);
    json_t *doc = waiters ? m->waiters_ : m->paginators_;
    pthread_mutex_unlock(&s_lock);
    if (!ok)
        return NULL;
    json_t *all = json_object_get(doc, waiters ? "waiters" : "pagination");
    if (!name)
        return all;
    return json_object_get(all, name);
}

json_t *aws_model_paginator(const aws_model *m, const char *operation, aws_error *err)
{
    if (!operation)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "no operation name"), NULL;
    return extras_get(m, false, operation, err);
}

json_t *aws_model_waiter(const aws_model *m, const char *name, aws_error *err)
{
    if (!name)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "no waiter name"), NULL;
    return extras_get(m, true, name, err);
}

json_t *aws_model_paginators(const aws_model *m, aws_error *err)
{
    return extras_get(m, false, NULL, err);
}

json_t *aws_model_waiters(const aws_model *m, aws_error *err)
{
    return extras_get(m, true, NULL, err);
}

/* ------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------- */

static bool error_matches(const aws_shape *s, const char *code)
{
    return !strcmp(s->name, code) || (s->error_code && !strcmp(s->error_code, code));
}

const aws_shape *aws_model_error_shape(const aws_model *m, const aws_operation *op,
                                       const char *code)
{
    if (!m || !code || !*code)
        return NULL;
    if (op)
        for (size_t i = 0; i < op->error_count; i++)
            if (error_matches(op->errors[i], code))
                return op->errors[i];
    const aws_shape *s = aws_model_shape(m, code);
    if (s && (s->flags & AWS_SF_EXCEPTION))
        return s;
    for (size_t i = 0; i < m->shape_count; i++)
        if ((m->shapes[i].flags & AWS_SF_EXCEPTION) && m->shapes[i].error_code &&
            !strcmp(m->shapes[i].error_code, code))
            return &m->shapes[i];
    return NULL;
}
