/*
 * Conformance of aws/codec against botocore's protocol suites in
 * ../shared/vectors/protocols (see its README.md and SOURCE.md).
 *
 *   conformance_protocols PROTOCOL      (query | ec2 | json | rest-json | rest-xml)
 *
 * Runs every case of input/<p>.json, output/<p>.json and legacy/{input,
 * output}/<p>.json (json also takes json_1_0*.json: awsJson1_0 and its
 * query-compatible variant).  Each case compiles its suite's model
 * ({metadata, shapes} + the case's operation) with aws_model_from_json and:
 *
 *   input:  aws_serialize(params) with host/base path from clientEndpoint and
 *           a fixed idempotency token; compares method, path?query (exact),
 *           every expected header (names case-insensitive; ", " and "," list
 *           separators equivalent; query/ec2 Content-Type may carry
 *           "; charset=utf-8"), forbidHeaders absent, requireHeaders present
 *           (Content-Length and Host are the transport's: counted present),
 *           host, and the body: JSON as values, XML as trees ignoring
 *           insignificant whitespace, anything else (query, raw payloads)
 *           byte for byte;
 *   output: aws_parse_response; success cases compare the result as JSON
 *           values (numbers numerically); error cases compare the error code,
 *           the message when the case gives one, and the modeled error
 *           members.  For query, as botocore's runner does, an output with
 *           members and no resultWrapper gets <OperationName>Result.
 *
 * Skipped: exactly the cases botocore skips (protocol-tests-ignore-list.json,
 * the "skipped by botocore" column of cases.tsv); the reason is printed.
 * LUMU_CONFORMANCE_RUN_SKIPPED=1 also runs them and says how they fare
 * (not counted).  Prints failing cases with a short diff and ends with
 * "N passed, M failed, K skipped"; exit 1 when M > 0, 2 on setup errors.
 */
#define _GNU_SOURCE
#include "codec.h"
#include "model.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <expat.h>

static int n_passed, n_failed, n_skipped;
static bool run_skipped;
static json_t *ignore_list; /* protocol-tests-ignore-list.json */
static json_t *tsv_skips;   /* "file|suite|case" -> true, from cases.tsv */

/* ------------------------------------------------------------------ diff */

static char diff_msg[2048];

static void set_diff(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_diff(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(diff_msg, sizeof diff_msg, fmt, ap);
    va_end(ap);
}

static char *dump_short(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (s && strlen(s) > 300)
        strcpy(s + 297, "...");
    return s;
}

/* Deep comparison; numbers numerically.  On mismatch sets diff_msg with the
 * path.  */
static bool json_same(const json_t *exp, const json_t *act, char *path, size_t plen)
{
    size_t cap = 512;
    if (json_is_number(exp) && json_is_number(act)) {
        double a = json_number_value(exp), b = json_number_value(act);
        if (a == b || fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)))
            return true;
    } else if (json_typeof(exp) == json_typeof(act)) {
        switch (json_typeof(exp)) {
        case JSON_OBJECT: {
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)exp, k, v)
            {
                json_t *o = json_object_get(act, k);
                size_t n = plen + (size_t)snprintf(path + plen, cap - plen, ".%s", k);
                if (n >= cap)
                    n = cap - 1;
                if (!o) {
                    set_diff("%s: missing", path);
                    return false;
                }
                if (!json_same(v, o, path, n))
                    return false;
                path[plen] = '\0';
            }
            json_object_foreach((json_t *)act, k, v)
            {
                if (!json_object_get(exp, k)) {
                    char *d = dump_short(v);
                    set_diff("%s.%s: unexpected member = %s", path, k, d ? d : "?");
                    free(d);
                    return false;
                }
            }
            return true;
        }
        case JSON_ARRAY: {
            if (json_array_size(exp) != json_array_size(act))
                break;
            for (size_t i = 0; i < json_array_size(exp); i++) {
                size_t n = plen + (size_t)snprintf(path + plen, cap - plen, "[%zu]", i);
                if (n >= cap)
                    n = cap - 1;
                if (!json_same(json_array_get(exp, i), json_array_get(act, i), path, n))
                    return false;
                path[plen] = '\0';
            }
            return true;
        }
        case JSON_STRING:
            if (json_string_length(exp) == json_string_length(act) &&
                !memcmp(json_string_value(exp), json_string_value(act), json_string_length(exp)))
                return true;
            break;
        default:
            return true; /* true/false/null of the same type */
        }
    }
    char *e = dump_short(exp), *a = dump_short(act);
    set_diff("%s: expected %s, got %s", *path ? path : "(top)", e ? e : "?", a ? a : "?");
    free(e);
    free(a);
    return false;
}

static bool values_equal(const json_t *exp, const json_t *act)
{
    char path[512] = "";
    return json_same(exp, act, path, 0);
}

/* ------------------------------------------------------------ XML trees */

typedef struct xn {
    char *name;
    json_t *attrs; /* object */
    char *text;
    struct xn *kids[256];
    int nkids;
    struct xn *parent;
} xn;

typedef struct xp {
    xn *root, *cur;
    bool bad;
} xp;

static void xn_free(xn *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->nkids; i++)
        xn_free(n->kids[i]);
    free(n->name);
    free(n->text);
    json_decref(n->attrs);
    free(n);
}

static void XMLCALL xs(void *ud, const char *name, const char **attrs)
{
    xp *p = ud;
    xn *n = calloc(1, sizeof *n);
    if (!n) {
        p->bad = true;
        return;
    }
    n->name = strdup(name);
    n->attrs = json_object();
    for (int i = 0; attrs[i]; i += 2)
        json_object_set_new(n->attrs, attrs[i], json_string(attrs[i + 1]));
    n->parent = p->cur;
    if (p->cur) {
        if (p->cur->nkids < 256)
            p->cur->kids[p->cur->nkids++] = n;
        else {
            p->bad = true;
            xn_free(n);
            return;
        }
    } else {
        p->root = n;
    }
    p->cur = n;
}

static void XMLCALL xe(void *ud, const char *name)
{
    (void)name;
    xp *p = ud;
    if (p->cur)
        p->cur = p->cur->parent;
}

static void XMLCALL xt(void *ud, const char *s, int len)
{
    xp *p = ud;
    if (!p->cur)
        return;
    size_t old = p->cur->text ? strlen(p->cur->text) : 0;
    char *t = realloc(p->cur->text, old + (size_t)len + 1);
    if (!t) {
        p->bad = true;
        return;
    }
    memcpy(t + old, s, (size_t)len);
    t[old + (size_t)len] = '\0';
    p->cur->text = t;
}

static xn *xml_tree(const char *s, size_t n)
{
    XML_Parser parser = XML_ParserCreate(NULL);
    xp p = {0};
    XML_SetUserData(parser, &p);
    XML_SetElementHandler(parser, xs, xe);
    XML_SetCharacterDataHandler(parser, xt);
    while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t'))
        s++, n--;
    int ok = XML_Parse(parser, s, (int)n, 1) == XML_STATUS_OK;
    XML_ParserFree(parser);
    if (!ok || p.bad) {
        xn_free(p.root);
        return NULL;
    }
    return p.root;
}

static void trim(const char *s, const char **start, size_t *len)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    while (n && strchr(" \t\r\n", *s))
        s++, n--;
    while (n && strchr(" \t\r\n", s[n - 1]))
        n--;
    *start = s;
    *len = n;
}

static bool xn_same(const xn *a, const xn *b)
{
    if (strcmp(a->name, b->name)) {
        set_diff("XML: element <%s> expected, got <%s>", a->name, b->name);
        return false;
    }
    if (!json_equal(a->attrs, b->attrs)) {
        char *x = dump_short(a->attrs), *y = dump_short(b->attrs);
        set_diff("XML <%s>: attributes %s expected, got %s", a->name, x, y);
        free(x);
        free(y);
        return false;
    }
    if (a->nkids != b->nkids) {
        set_diff("XML <%s>: %d children expected, got %d", a->name, a->nkids, b->nkids);
        return false;
    }
    if (!a->nkids) {
        const char *s1, *s2;
        size_t l1, l2;
        trim(a->text, &s1, &l1);
        trim(b->text, &s2, &l2);
        if (l1 != l2 || memcmp(s1, s2, l1)) {
            set_diff("XML <%s>: text \"%.*s\" expected, got \"%.*s\"", a->name, (int)l1, s1,
                     (int)l2, s2);
            return false;
        }
    }
    for (int i = 0; i < a->nkids; i++)
        if (!xn_same(a->kids[i], b->kids[i]))
            return false;
    return true;
}

/* ------------------------------------------------------------ bodies */

static bool body_same(const char *proto, const char *exp, size_t el, const char *act, size_t al)
{
    if (el == al && !memcmp(exp, act, el))
        return true;
    bool json = !strcmp(proto, "json") || !strcmp(proto, "rest-json");
    bool xml = !strcmp(proto, "rest-xml");
    if (json && el && al) {
        json_t *a = json_loadb(exp, el, JSON_DECODE_ANY, NULL);
        json_t *b = json_loadb(act, al, JSON_DECODE_ANY, NULL);
        if (a && b) {
            bool same = values_equal(a, b);
            if (!same) {
                char tmp[sizeof diff_msg];
                snprintf(tmp, sizeof tmp, "body: %.2000s", diff_msg);
                memcpy(diff_msg, tmp, sizeof diff_msg);
            }
            json_decref(a);
            json_decref(b);
            return same;
        }
        json_decref(a);
        json_decref(b);
    }
    if (xml && el && al) {
        xn *a = xml_tree(exp, el), *b = xml_tree(act, al);
        if (a && b) {
            bool same = xn_same(a, b);
            xn_free(a);
            xn_free(b);
            return same;
        }
        xn_free(a);
        xn_free(b);
    }
    set_diff("body: expected \"%.*s\", got \"%.*s\"", (int)(el > 400 ? 400 : el), exp,
             (int)(al > 400 ? 400 : al), act);
    return false;
}

/* ------------------------------------------------------------ headers */

static const char *find_header(const aws_http_request *r, const char *name, char *synth,
                               size_t n)
{
    const char *v = aws_http_request_header(r, name);
    if (v)
        return v;
    /* the transport's headers */
    if (!strcasecmp(name, "Content-Length")) {
        snprintf(synth, n, "%zu", r->body_len);
        return synth;
    }
    if (!strcasecmp(name, "Host") && r->host)
        return r->host;
    return NULL;
}

static void norm_list(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; in[i] && o + 1 < n; i++) {
        out[o++] = in[i];
        if (in[i] == ',')
            while (in[i + 1] == ' ')
                i++;
    }
    out[o] = '\0';
}

static bool header_same(const char *proto, const char *name, const char *exp, const char *act)
{
    if (!strcmp(exp, act))
        return true;
    if ((!strcmp(proto, "query") || !strcmp(proto, "ec2")) && !strcasecmp(name, "Content-Type")) {
        size_t el = strlen(exp);
        if (!strncmp(exp, act, el) && !strcmp(act + el, "; charset=utf-8"))
            return true;
    }
    char a[4096], b[4096];
    norm_list(exp, a, sizeof a);
    norm_list(act, b, sizeof b);
    return !strcmp(a, b);
}

/* ------------------------------------------------------------ cases */

static bool fixed_token(void *ud, char out[64])
{
    (void)ud;
    strcpy(out, "00000000-0000-4000-8000-000000000000");
    return true;
}

/* Model for one case: suite metadata + shapes + the case's operation. */
static aws_model *case_model(const json_t *suite, const json_t *given, const char *proto,
                             bool output, aws_error *err)
{
    json_t *op = json_deep_copy(given);
    const char *name = json_string_value(json_object_get(op, "name"));
    if (!name)
        name = "OperationName";
    json_t *out = json_object_get(op, "output");
    const json_t *shapes = json_object_get(suite, "shapes");
    if (output && !strcmp(proto, "query") && out && !json_object_get(out, "resultWrapper")) {
        const json_t *os = json_object_get(shapes, json_string_value(json_object_get(out, "shape")));
        if (json_object_size(json_object_get(os, "members"))) {
            char wrapper[256];
            snprintf(wrapper, sizeof wrapper, "%sResult", name);
            json_object_set_new(out, "resultWrapper", json_string(wrapper));
        }
    }
    json_t *doc = json_pack("{s:O, s:O, s:{s:o}}", "metadata", json_object_get(suite, "metadata"),
                            "shapes", shapes ? shapes : json_object(), "operations", name, op);
    aws_model *m = aws_model_from_json(doc, err);
    json_decref(doc);
    return m;
}

static const char *case_name(const json_t *c)
{
    return json_string_value(json_object_get(json_object_get(c, "given"), "name"));
}

static bool run_input(const char *proto, const json_t *suite, const json_t *c)
{
    aws_error err;
    aws_error_clear(&err);
    aws_model *m = case_model(suite, json_object_get(c, "given"), proto, false, &err);
    if (!m) {
        set_diff("model: %s", err.message);
        return false;
    }
    const char *opname = case_name(c) ? case_name(c) : "OperationName";
    const aws_operation *op = aws_model_operation(m, opname);
    aws_serialize_opts o = {.idempotency_token = fixed_token};
    char host[256] = "", base[256] = "";
    const char *ep = json_string_value(json_object_get(suite, "clientEndpoint"));
    if (ep) {
        const char *h = strstr(ep, "://");
        h = h ? h + 3 : ep;
        size_t hl = strcspn(h, "/");
        snprintf(host, sizeof host, "%.*s", (int)hl, h);
        snprintf(base, sizeof base, "%s", h + hl);
        o.host = host;
        o.base_path = base;
    }
    json_t *params = json_object_get(c, "params");
    aws_http_request r;
    aws_http_request_init(&r);
    bool ok = aws_serialize(m, op, params ? params : NULL, &o, &r, &err);
    if (!ok) {
        set_diff("serialize failed: %s: %s", aws_errcode_name(err.code), err.message);
        aws_model_free(m);
        return false;
    }
    const json_t *s = json_object_get(c, "serialized");
    char uri[8192];
    snprintf(uri, sizeof uri, "%s%s%s", r.path, *r.query ? "?" : "", r.query);
    const char *em = json_string_value(json_object_get(s, "method"));
    const char *eu = json_string_value(json_object_get(s, "uri"));
    const char *eh = json_string_value(json_object_get(s, "host"));
    const char *eb = json_string_value(json_object_get(s, "body"));
    size_t ebl = eb ? json_string_length(json_object_get(s, "body")) : 0;
    char synth[32];
    if (em && strcmp(em, r.method)) {
        set_diff("method: expected %s, got %s", em, r.method);
        ok = false;
    } else if (eu && strcmp(eu, uri)) {
        set_diff("uri: expected %s, got %s", eu, uri);
        ok = false;
    } else if (eh && (!r.host || strcmp(eh, r.host))) {
        set_diff("host: expected %s, got %s", eh, r.host ? r.host : "(none)");
        ok = false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(s, "headers"), k, v)
    {
        if (!ok)
            break;
        const char *act = find_header(&r, k, synth, sizeof synth);
        if (!act) {
            set_diff("header %s: missing (expected \"%s\")", k, json_string_value(v));
            ok = false;
        } else if (!header_same(proto, k, json_string_value(v), act)) {
            set_diff("header %s: expected \"%s\", got \"%s\"", k, json_string_value(v), act);
            ok = false;
        }
    }
    size_t i;
    json_array_foreach(json_object_get(s, "forbidHeaders"), i, v)
    {
        if (ok && aws_http_request_header(&r, json_string_value(v))) {
            set_diff("header %s: forbidden but present", json_string_value(v));
            ok = false;
        }
    }
    json_array_foreach(json_object_get(s, "requireHeaders"), i, v)
    {
        if (ok && !find_header(&r, json_string_value(v), synth, sizeof synth)) {
            set_diff("header %s: required but absent", json_string_value(v));
            ok = false;
        }
    }
    if (ok && eb && !body_same(proto, eb, ebl, r.body, r.body_len))
        ok = false;
    aws_http_request_clean(&r);
    aws_model_free(m);
    return ok;
}

static bool run_output(const char *proto, const json_t *suite, const json_t *c)
{
    aws_error err;
    aws_error_clear(&err);
    aws_model *m = case_model(suite, json_object_get(c, "given"), proto, true, &err);
    if (!m) {
        set_diff("model: %s", err.message);
        return false;
    }
    const char *opname = case_name(c) ? case_name(c) : "OperationName";
    const aws_operation *op = aws_model_operation(m, opname);
    const json_t *resp = json_object_get(c, "response");
    aws_http_header hdrs[64];
    size_t nh = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(resp, "headers"), k, v)
    {
        if (nh < 64) {
            hdrs[nh].name = k;
            hdrs[nh].value = json_string_value(v);
            nh++;
        }
    }
    const json_t *jb = json_object_get(resp, "body");
    char *body = NULL;
    size_t blen = 0;
    bool eventstream = false;
    /* event-stream bodies are base64 in the suites (binary frames) */
    const aws_shape *os = op && op->output ? op->output->shape : NULL;
    for (size_t i = 0; os && i < os->member_count; i++)
        if (os->members[i].shape->flags & AWS_SF_EVENTSTREAM)
            eventstream = true;
    if (eventstream && json_is_string(jb)) {
        body = aws_base64_decode(json_string_value(jb), json_string_length(jb), &blen);
    }
    aws_http_response r = {
        .status = (int)json_integer_value(json_object_get(resp, "status_code")),
        .headers = hdrs,
        .header_count = nh,
        .body = body ? body : (jb ? json_string_value(jb) : ""),
        .body_len = body ? blen : (jb ? json_string_length(jb) : 0),
    };
    json_t *out = NULL;
    aws_response_meta meta;
    bool parsed = aws_parse_response(m, op, &r, &out, &meta, &err);
    bool ok = true;
    if (json_object_get(c, "error")) {
        const char *ecode = json_string_value(json_object_get(c, "errorCode"));
        const char *emsg = json_string_value(json_object_get(c, "errorMessage"));
        if (parsed || err.code != AWS_ERR_SERVICE) {
            set_diff("expected service error %s, got %s (%s)", ecode ? ecode : "?",
                     parsed ? "success" : aws_errcode_name(err.code), err.message);
            ok = false;
        } else if (ecode && strcmp(ecode, err.aws_code)) {
            set_diff("error code: expected %s, got %s", ecode, err.aws_code);
            ok = false;
        } else if (emsg && strcmp(emsg, err.message)) {
            set_diff("error message: expected \"%s\", got \"%s\"", emsg, err.message);
            ok = false;
        } else if (!values_equal(json_object_get(c, "error"), out)) {
            ok = false;
        }
    } else {
        if (!parsed) {
            set_diff("parse failed: %s: %s [%s]", aws_errcode_name(err.code), err.message,
                     err.aws_code);
            ok = false;
        } else if (!values_equal(json_object_get(c, "result"), out)) {
            ok = false;
        }
    }
    json_decref(out);
    aws_free(body);
    aws_model_free(m);
    return ok;
}

/* ------------------------------------------------------------ skips */

static bool in_list(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    if (!s)
        return false;
    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), s))
            return true;
    }
    return false;
}

/* Why botocore skips this case, or NULL. */
static const char *skip_reason(const char *rel, const char *file_proto, bool input, size_t si,
                               size_t ci, const json_t *suite, const json_t *c, char *buf,
                               size_t n)
{
    char key[512];
    snprintf(key, sizeof key, "%s|%zu|%zu", rel, si, ci);
    bool tsv = json_object_get(tsv_skips, key) != NULL;
    const char *desc = json_string_value(json_object_get(suite, "description"));
    const char *id = json_string_value(json_object_get(c, "id"));
    const json_t *gen = json_object_get(json_object_get(ignore_list, "general"),
                                        input ? "input" : "output");
    const json_t *pl = json_object_get(
        json_object_get(json_object_get(json_object_get(ignore_list, "protocols"), file_proto),
                        input ? "input" : "output"),
        "cases");
    if (in_list(json_object_get(gen, "suites"), desc))
        snprintf(buf, n, "suite \"%s\" is in the ignore list's general.%s.suites", desc,
                 input ? "input" : "output");
    else if (in_list(pl, id))
        snprintf(buf, n, "case id is in the ignore list's protocols.%s.%s.cases", file_proto,
                 input ? "input" : "output");
    else if (tsv)
        snprintf(buf, n, "marked skipped-by-botocore in cases.tsv");
    else
        return NULL;
    if (!tsv)
        fprintf(stderr, "note: %s %zu:%zu is in the ignore list but not marked in cases.tsv\n",
                rel, si, ci);
    return buf;
}

static bool load_tsv(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    tsv_skips = json_object();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '#')
            continue;
        char *fields[8] = {0};
        int nf = 0;
        line[strcspn(line, "\r\n")] = '\0';
        for (char *p = line; p && nf < 8;) {
            fields[nf++] = p;
            p = strchr(p, '\t');
            if (p)
                *p++ = '\0';
        }
        if (nf >= 8 && !strcmp(fields[7], "yes")) {
            char key[512];
            snprintf(key, sizeof key, "%s|%s|%s", fields[0], fields[1], fields[2]);
            json_object_set_new(tsv_skips, key, json_true());
        }
    }
    free(line);
    fclose(f);
    return true;
}

/* ------------------------------------------------------------ files */

static int run_file(const char *dir, const char *rel, const char *proto)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    json_error_t je;
    json_t *suites = json_load_file(path, 0, &je);
    if (!suites) {
        fprintf(stderr, "conformance: cannot read %s: %s\n", path, je.text);
        return -1;
    }
    bool input = strstr(rel, "input/") != NULL;
    /* the ignore list's protocol key: the file's base name */
    char file_proto[64];
    const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    snprintf(file_proto, sizeof file_proto, "%.*s", (int)(strlen(base) - 5), base);
    int cases = 0;
    size_t si;
    json_t *suite;
    json_array_foreach(suites, si, suite)
    {
        size_t ci;
        json_t *c;
        json_array_foreach(json_object_get(suite, "cases"), ci, c)
        {
            cases++;
            const char *id = json_string_value(json_object_get(c, "id"));
            char label[512];
            snprintf(label, sizeof label, "%s %zu:%zu %s", rel, si, ci,
                     id ? id : json_string_value(json_object_get(suite, "description")));
            char why[256];
            const char *skip = skip_reason(rel, file_proto, input, si, ci, suite, c, why,
                                           sizeof why);
            diff_msg[0] = '\0';
            if (skip) {
                n_skipped++;
                printf("SKIP %s: botocore skips it: %s\n", label, skip);
                if (!run_skipped)
                    continue;
                bool ok = input ? run_input(proto, suite, c) : run_output(proto, suite, c);
                printf("     (run anyway: %s%s%s)\n", ok ? "passes" : "differs: ",
                       ok ? "" : diff_msg, "");
                continue;
            }
            bool ok = input ? run_input(proto, suite, c) : run_output(proto, suite, c);
            if (ok) {
                n_passed++;
            } else {
                n_failed++;
                printf("FAIL %s\n     %s\n", label, diff_msg);
            }
        }
    }
    json_decref(suites);
    return cases;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: conformance_protocols query|ec2|json|rest-json|rest-xml\n");
        return 2;
    }
    const char *proto = argv[1];
    const char *shared = getenv("LUMU_SHARED");
    if (!shared || !*shared) {
        fprintf(stderr, "conformance_protocols: LUMU_SHARED is not set: it must name the shared/ "
                        "directory holding vectors/protocols (ctest sets it)\n");
        return 2;
    }
    run_skipped = getenv("LUMU_CONFORMANCE_RUN_SKIPPED") &&
                  !strcmp(getenv("LUMU_CONFORMANCE_RUN_SKIPPED"), "1");
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/vectors/protocols", shared);
    snprintf(path, sizeof path, "%s/protocol-tests-ignore-list.json", dir);
    ignore_list = json_load_file(path, 0, NULL);
    char tsv[1200];
    snprintf(tsv, sizeof tsv, "%s/cases.tsv", dir);
    if (!ignore_list || !load_tsv(tsv)) {
        fprintf(stderr, "conformance_protocols: cannot read %s or %s (is LUMU_SHARED=%s right?)\n",
                path, tsv, shared);
        json_decref(ignore_list);
        json_decref(tsv_skips);
        return 2;
    }
    static const char *const json_files[] = {
        "input/json.json", "output/json.json", "input/json_1_0.json", "output/json_1_0.json",
        "input/json_1_0-query-compatible.json", "output/json_1_0-query-compatible.json",
        "legacy/input/json.json", "legacy/output/json.json", NULL};
    char f1[128], f2[128], f3[128], f4[128];
    snprintf(f1, sizeof f1, "input/%s.json", proto);
    snprintf(f2, sizeof f2, "output/%s.json", proto);
    snprintf(f3, sizeof f3, "legacy/input/%s.json", proto);
    snprintf(f4, sizeof f4, "legacy/output/%s.json", proto);
    const char *files[] = {f1, f2, f3, f4, NULL};
    const char *const *list = !strcmp(proto, "json") ? json_files : files;
    if (strcmp(proto, "json") && strcmp(proto, "query") && strcmp(proto, "ec2") &&
        strcmp(proto, "rest-json") && strcmp(proto, "rest-xml")) {
        fprintf(stderr, "conformance_protocols: unknown protocol %s\n", proto);
        json_decref(ignore_list);
        json_decref(tsv_skips);
        return 2;
    }
    int status = 0, total = 0;
    for (int i = 0; list[i]; i++) {
        int n = run_file(dir, list[i], proto);
        if (n < 0)
            status = 2;
        else
            total += n;
    }
    json_decref(ignore_list);
    json_decref(tsv_skips);
    printf("%d passed, %d failed, %d skipped\n", n_passed, n_failed, n_skipped);
    if (status)
        return status;
    if (total == 0) {
        fprintf(stderr, "conformance_protocols: no case found under %s\n", dir);
        return 2;
    }
    return n_failed ? 1 : 0;
}
