/* codec_json: JSON bodies (json and rest-json protocols): a shape-driven
 * writer, a shape-driven reader, the json protocol's request serializer and
 * the response parser of both JSON protocols. */
#include "codec_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------
 * Writer
 * ---------------------------------------------------------------------- */

static bool jw_string(ser_ctx *c, const char *s, size_t n, cbuf *b)
{
    static const char hex[] = "0123456789abcdef";
    if (!utf8_valid(s, n))
        return ser_fail(c, "string is not valid UTF-8");
    cb_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        cb_put(b, s + run, i - run);
        run = i + 1;
        switch (ch) {
        case '"': cb_puts(b, "\\\""); break;
        case '\\': cb_puts(b, "\\\\"); break;
        case '\n': cb_puts(b, "\\n"); break;
        case '\r': cb_puts(b, "\\r"); break;
        case '\t': cb_puts(b, "\\t"); break;
        case '\b': cb_puts(b, "\\b"); break;
        case '\f': cb_puts(b, "\\f"); break;
        default: {
            char esc[7] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15], 0};
            cb_puts(b, esc);
        }
        }
    }
    cb_put(b, s + run, n - run);
    cb_putc(b, '"');
    return !b->oom || ser_oom(c);
}

static bool jw_real(ser_ctx *c, double d, cbuf *b)
{
    char buf[40];
    if (!isfinite(d))
        return ser_fail(c, "non-finite number");
    fmt_double(d, buf);
    return cb_puts(b, buf) || ser_oom(c);
}

bool json_write_any(ser_ctx *c, const json_t *v, cbuf *b)
{
    if (!ser_enter(c))
        return false;
    bool ok = true;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *x;
        bool first = true;
        cb_putc(b, '{');
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first)
                cb_putc(b, ',');
            first = false;
            size_t old = path_push_key(c, k);
            ok = jw_string(c, k, strlen(k), b) && cb_putc(b, ':') && json_write_any(c, x, b);
            path_pop(c, old);
            if (!ok)
                break;
        }
        if (ok)
            cb_putc(b, '}');
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *x;
        cb_putc(b, '[');
        json_array_foreach(v, i, x)
        {
            if (i)
                cb_putc(b, ',');
            size_t old = path_push_index(c, i);
            ok = json_write_any(c, x, b);
            path_pop(c, old);
            if (!ok)
                break;
        }
        if (ok)
            cb_putc(b, ']');
        break;
    }
    case JSON_STRING:
        ok = jw_string(c, json_string_value(v), json_string_length(v), b);
        break;
    case JSON_INTEGER:
        cb_printf(b, "%lld", (long long)json_integer_value(v));
        break;
    case JSON_REAL:
        ok = jw_real(c, json_real_value(v), b);
        break;
    case JSON_TRUE: cb_puts(b, "true"); break;
    case JSON_FALSE: cb_puts(b, "false"); break;
    case JSON_NULL: cb_puts(b, "null"); break;
    }
    ser_leave(c);
    return ok && (!b->oom || ser_oom(c));
}

static bool check_members(ser_ctx *c, const aws_shape *s, const json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        if (!aws_shape_member(s, k))
            return ser_fail(c, "unknown parameter \"%s\" (not a member of %s)", k, s->name);
    }
    return true;
}

/* Writes the members of s (all of them, or only those with no location). */
static bool jw_struct(ser_ctx *c, const aws_shape *s, const json_t *v, bool body_only, cbuf *b)
{
    if (!ser_expect(c, v, JSON_OBJECT, "object") || !check_members(c, s, v))
        return false;
    bool first = true;
    cb_putc(b, '{');
    for (size_t i = 0; i < s->member_count; i++) {
        const aws_member *mb = &s->members[i];
        if (body_only && mb->location != AWS_LOC_BODY)
            continue;
        const json_t *mv = json_object_get(v, mb->name);
        if (!mv || json_is_null(mv))
            continue;
        if (!first)
            cb_putc(b, ',');
        first = false;
        const char *wire = aws_member_wire_name(mb);
        size_t old = path_push(c, mb->name);
        bool ok = jw_string(c, wire, strlen(wire), b) && cb_putc(b, ':') &&
                  json_write_value(c, mb, mv, b);
        path_pop(c, old);
        if (!ok)
            return false;
    }
    cb_putc(b, '}');
    return !b->oom || ser_oom(c);
}

bool json_write_struct_body(ser_ctx *c, const aws_shape *s, const json_t *v, cbuf *out)
{
    return jw_struct(c, s, v, true, out);
}

bool json_write_value(ser_ctx *c, const aws_member *mb, const json_t *v, cbuf *b)
{
    const aws_shape *s = mb->shape;
    if (!ser_enter(c))
        return false;
    bool ok = true;
    switch (s->type) {
    case AWS_SHAPE_STRUCTURE:
        if (s->flags & AWS_SF_DOCUMENT)
            ok = json_write_any(c, v, b);
        else
            ok = jw_struct(c, s, v, false, b);
        break;
    case AWS_SHAPE_LIST: {
        if (!(ok = ser_expect(c, v, JSON_ARRAY, "array")))
            break;
        size_t i;
        json_t *x;
        cb_putc(b, '[');
        json_array_foreach(v, i, x)
        {
            if (i)
                cb_putc(b, ',');
            size_t old = path_push_index(c, i);
            if (json_is_null(x))
                cb_puts(b, "null");
            else
                ok = json_write_value(c, &s->member, x, b);
            path_pop(c, old);
            if (!ok)
                break;
        }
        cb_putc(b, ']');
        break;
    }
    case AWS_SHAPE_MAP: {
        if (!(ok = ser_expect(c, v, JSON_OBJECT, "object")))
            break;
        const char *k;
        json_t *x;
        bool first = true;
        cb_putc(b, '{');
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first)
                cb_putc(b, ',');
            first = false;
            size_t old = path_push_key(c, k);
            ok = jw_string(c, k, strlen(k), b) && cb_putc(b, ':');
            if (ok) {
                if (json_is_null(x))
                    cb_puts(b, "null");
                else
                    ok = json_write_value(c, &s->value, x, b);
            }
            path_pop(c, old);
            if (!ok)
                break;
        }
        cb_putc(b, '}');
        break;
    }
    case AWS_SHAPE_STRING:
        if ((ok = ser_expect(c, v, JSON_STRING, "string")))
            ok = jw_string(c, json_string_value(v), json_string_length(v), b);
        break;
    case AWS_SHAPE_BOOLEAN:
        if ((ok = ser_expect(c, v, JSON_TRUE, "boolean")))
            cb_puts(b, json_is_true(v) ? "true" : "false");
        break;
    case AWS_SHAPE_FLOAT:
    case AWS_SHAPE_DOUBLE:
        if (json_is_string(v)) {
            /* "NaN", "Infinity", "-Infinity" travel as strings */
            cbuf t = {0};
            ok = ser_scalar_text(c, mb, v, NULL, &t) && jw_string(c, t.data, t.len, b);
            cb_free(&t);
        } else if (json_is_real(v)) {
            ok = jw_real(c, json_real_value(v), b);
        } else {
            ok = ser_scalar_text(c, mb, v, NULL, b);
        }
        break;
    case AWS_SHAPE_TIMESTAMP: {
        const char *fmt = mb->timestamp_format ? mb->timestamp_format : "unixTimestamp";
        cbuf t = {0};
        ok = ser_scalar_text(c, mb, v, fmt, &t);
        if (ok) {
            if (!strcasecmp(fmt, "unixTimestamp"))
                cb_put(b, t.data, t.len);
            else
                ok = jw_string(c, t.data, t.len, b);
        }
        cb_free(&t);
        break;
    }
    case AWS_SHAPE_BLOB: {
        cbuf t = {0};
        ok = ser_scalar_text(c, mb, v, NULL, &t) && jw_string(c, t.data ? t.data : "", t.len, b);
        cb_free(&t);
        break;
    }
    default: /* integers, big numbers */
        ok = ser_scalar_text(c, mb, v, NULL, b);
        break;
    }
    ser_leave(c);
    return ok && (!b->oom || ser_oom(c));
}

/* ------------------------------------------------------------------------
 * Reader
 * ---------------------------------------------------------------------- */

static json_t *parse_fail(aws_error *err, const aws_member *mb, const char *what,
                          const json_t *got)
{
    aws_error_set(err, AWS_ERR_PARSE, "response member %s: expected %s, got %s", mb->name, what,
                  json_type_label(got));
    return NULL;
}

/* Union with one member the client does not know: botocore's marker. */
static json_t *unknown_union_member(const aws_shape *s, const json_t *doc, aws_error *err)
{
    const char *k, *tag = NULL;
    json_t *v;
    size_t set = 0;
    json_object_foreach((json_t *)doc, k, v)
    {
        if (!strcmp(k, "__type") || json_is_null(v))
            continue;
        set++;
        tag = k;
    }
    if (set != 1)
        return NULL;
    for (size_t i = 0; i < s->member_count; i++)
        if (!strcmp(aws_member_wire_name(&s->members[i]), tag))
            return NULL;
    json_t *r = json_pack("{s:{s:s}}", "SDK_UNKNOWN_MEMBER", "name", tag);
    if (!r)
        aws_error_oom(err);
    return r;
}

static bool parse_struct_into(const aws_shape *s, const json_t *doc, json_t *into, bool body_only,
                              int depth, aws_error *err)
{
    for (size_t i = 0; i < s->member_count; i++) {
        const aws_member *mb = &s->members[i];
        if (body_only && (mb->location == AWS_LOC_HEADER || mb->location == AWS_LOC_HEADERS ||
                          mb->location == AWS_LOC_STATUSCODE))
            continue;
        const json_t *v = json_object_get(doc, aws_member_wire_name(mb));
        if (!v || json_is_null(v))
            continue;
        json_t *pv = json_parse_value(mb, v, depth + 1, err);
        if (!pv)
            return false;
        if (json_object_set_new(into, mb->name, pv) != 0)
            return aws_error_oom(err);
    }
    return true;
}

json_t *json_parse_struct_body(const aws_shape *s, const json_t *doc, json_t *into,
                               aws_error *err)
{
    if (json_is_null(doc))
        return into;
    if (!json_is_object(doc))
        return aws_error_set(err, AWS_ERR_PARSE, "response body: expected a JSON object, got %s",
                             json_type_label(doc)), NULL;
    if (s->flags & AWS_SF_UNION) {
        aws_error local;
        aws_error_clear(&local);
        json_t *u = unknown_union_member(s, doc, &local);
        if (u) {
            int rc = json_object_update(into, u);
            json_decref(u);
            return rc == 0 ? into : (aws_error_oom(err), NULL);
        }
        if (local.code != AWS_ERR_NONE) {
            if (err)
                *err = local;
            return NULL;
        }
    }
    return parse_struct_into(s, doc, into, true, 0, err) ? into : NULL;
}

json_t *json_parse_value(const aws_member *mb, const json_t *doc, int depth, aws_error *err)
{
    const aws_shape *s = mb->shape;
    if (depth > CODEC_MAX_DEPTH)
        return aws_error_set(err, AWS_ERR_PARSE, "response nested deeper than %d levels",
                             CODEC_MAX_DEPTH), NULL;
    json_t *r = NULL;
    switch (s->type) {
    case AWS_SHAPE_STRUCTURE:
        if (s->flags & AWS_SF_DOCUMENT) {
            r = json_deep_copy(doc);
            break;
        }
        if (!json_is_object(doc))
            return parse_fail(err, mb, "object", doc);
        if (s->flags & AWS_SF_UNION) {
            aws_error local;
            aws_error_clear(&local);
            r = unknown_union_member(s, doc, &local);
            if (r || local.code != AWS_ERR_NONE) {
                if (!r && err)
                    *err = local;
                return r;
            }
        }
        if (!(r = json_object()))
            break;
        if (!parse_struct_into(s, doc, r, false, depth, err)) {
            json_decref(r);
            return NULL;
        }
        return r;
    case AWS_SHAPE_LIST: {
        if (!json_is_array(doc))
            return parse_fail(err, mb, "array", doc);
        if (!(r = json_array()))
            break;
        size_t i;
        json_t *x;
        json_array_foreach(doc, i, x)
        {
            json_t *pv = json_is_null(x) ? json_null() : json_parse_value(&s->member, x, depth + 1,
                                                                          err);
            if (!pv || json_array_append_new(r, pv) != 0) {
                if (pv)
                    aws_error_oom(err);
                json_decref(r);
                return NULL;
            }
        }
        return r;
    }
    case AWS_SHAPE_MAP: {
        if (!json_is_object(doc))
            return parse_fail(err, mb, "object", doc);
        if (!(r = json_object()))
            break;
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)doc, k, x)
        {
            if (json_is_null(x))
                continue; /* dense maps: null entries are dropped */
            json_t *pv = json_parse_value(&s->value, x, depth + 1, err);
            if (!pv || json_object_set_new(r, k, pv) != 0) {
                if (pv)
                    aws_error_oom(err);
                json_decref(r);
                return NULL;
            }
        }
        return r;
    }
    case AWS_SHAPE_STRING:
    case AWS_SHAPE_BIGINTEGER:
    case AWS_SHAPE_BIGDECIMAL:
        if (json_is_string(doc))
            r = json_stringn_nocheck(json_string_value(doc), json_string_length(doc));
        else /* botocore passes other values through unchanged */
            r = json_deep_copy(doc);
        break;
    case AWS_SHAPE_BOOLEAN:
        if (json_is_boolean(doc))
            r = json_boolean(json_is_true(doc));
        else if (json_is_string(doc))
            r = value_from_text(mb, json_string_value(doc), json_string_length(doc), err);
        else
            return parse_fail(err, mb, "boolean", doc);
        return r;
    case AWS_SHAPE_BYTE:
    case AWS_SHAPE_SHORT:
    case AWS_SHAPE_INTEGER:
    case AWS_SHAPE_LONG:
        if (json_is_integer(doc))
            r = json_integer(json_integer_value(doc));
        else if (json_is_real(doc))
            r = json_integer((json_int_t)json_real_value(doc));
        else if (json_is_string(doc))
            return value_from_text(mb, json_string_value(doc), json_string_length(doc), err);
        else
            return parse_fail(err, mb, "integer", doc);
        break;
    case AWS_SHAPE_FLOAT:
    case AWS_SHAPE_DOUBLE:
        if (json_is_number(doc))
            r = json_real(json_number_value(doc));
        else if (json_is_string(doc))
            return value_from_text(mb, json_string_value(doc), json_string_length(doc), err);
        else
            return parse_fail(err, mb, "number", doc);
        break;
    case AWS_SHAPE_TIMESTAMP:
        if (json_is_number(doc))
            r = timestamp_value(json_number_value(doc));
        else if (json_is_string(doc))
            return value_from_text(mb, json_string_value(doc), json_string_length(doc), err);
        else
            return parse_fail(err, mb, "timestamp", doc);
        break;
    case AWS_SHAPE_BLOB:
        if (!json_is_string(doc))
            return parse_fail(err, mb, "base64 string", doc);
        return value_from_text(mb, json_string_value(doc), json_string_length(doc), err);
    }
    if (!r)
        aws_error_oom(err);
    return r;
}

json_t *json_decode_body(const char *body, size_t n, aws_error *err)
{
    size_t i = 0;
    while (i < n && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i == n) {
        json_t *o = json_object();
        if (!o)
            aws_error_oom(err);
        return o;
    }
    json_error_t je;
    json_t *doc = json_loadb(body, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!doc && (json_error_code(&je) == json_error_out_of_memory || !je.text[0]))
        aws_error_oom(err);
    else if (!doc)
        aws_error_set(err, AWS_ERR_PARSE, "response body is not valid JSON (line %d: %s)",
                      je.line, je.text);
    return doc;
}

/* "aws.protocoltests#FooError:http://..." -> "FooError" */
static void sanitize_code(const char *in, char *code, size_t code_n)
{
    size_t len = strcspn(in, ":");
    const char *start = in;
    for (size_t i = 0; i < len; i++)
        if (in[i] == '#')
            start = in + i + 1;
    len -= (size_t)(start - in);
    snprintf(code, code_n, "%.*s", (int)len, start);
}

void json_error_fields(const aws_http_response *resp, const json_t *doc, bool rest, char *code,
                       size_t code_n, char *msg, size_t msg_n)
{
    const char *c = resp_header(resp, "x-amzn-ErrorType");
    if (!c)
        c = json_string_value(json_object_get(doc, "__type"));
    (void)rest; /* both JSON protocols: Smithy allows "code" (json: after __type) */
    if (!c) {
        c = json_string_value(json_object_get(doc, "code"));
        if (!c)
            c = json_string_value(json_object_get(doc, "Code"));
    }
    if (c) {
        sanitize_code(c, code, code_n);
    } else {
        snprintf(code, code_n, "%d", resp->status);
    }
    /* awsQueryCompatible services name the query-era code in a header. */
    const char *qe = resp_header(resp, "x-amzn-query-error");
    if (qe) {
        const char *semi = strchr(qe, ';');
        if (semi && semi != qe && !strchr(semi + 1, ';'))
            snprintf(code, code_n, "%.*s", (int)(semi - qe), qe);
    }
    const char *m = json_string_value(json_object_get(doc, "message"));
    if (!m)
        m = json_string_value(json_object_get(doc, "Message"));
    if (!m)
        m = json_string_value(json_object_get(doc, "errorMessage"));
    snprintf(msg, msg_n, "%s", m ? m : "");
}

/* ------------------------------------------------------------------------
 * json protocol: request
 * ---------------------------------------------------------------------- */

bool json_rpc_serialize(ser_ctx *c, const json_t *input, aws_http_request *out)
{
    cbuf b = {0};
    bool ok;
    if (c->op->input && input)
        ok = jw_struct(c, c->op->input->shape, input, false, &b);
    else
        ok = cb_puts(&b, "{}") || ser_oom(c);
    if (!ok) {
        cb_free(&b);
        return false;
    }
    out->body = cb_take(&b, &out->body_len);
    out->path = aws_strdup("/");
    out->query = aws_strdup("");
    if (!out->body || !out->path || !out->query)
        return ser_oom(c);
    char target[256], ctype[64];
    snprintf(target, sizeof target, "%s.%s", c->m->target_prefix ? c->m->target_prefix : "",
             c->op->name);
    snprintf(ctype, sizeof ctype, "application/x-amz-json-%s",
             c->m->json_version ? c->m->json_version : "1.0");
    if (!req_add_header(out, "X-Amz-Target", target) ||
        !req_add_header(out, "Content-Type", ctype) ||
        (c->m->query_compatible && !req_add_header(out, "x-amzn-query-mode", "true")))
        return ser_oom(c);
    return true;
}

/* ------------------------------------------------------------------------
 * json / rest-json: responses
 * ---------------------------------------------------------------------- */

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
            return false;
    return true;
}

/* The members of an output (or error) shape from a rest-json/json response. */
static bool parse_shape_from_response(const aws_model *m, const aws_shape *s,
                                      const aws_member *payload, const aws_http_response *resp,
                                      const json_t *doc, json_t *into, aws_error *err)
{
    bool rest = m->protocol == AWS_PROTOCOL_REST_JSON;
    const char *body = resp->body ? resp->body : "";
    if (rest && !rest_parse_non_body(s, resp, into, err))
        return false;
    if (rest && payload) {
        const aws_member *pm = payload;
        if (pm->shape->flags & AWS_SF_EVENTSTREAM)
            return true; /* read by eventstream_into */
        if (pm->shape->type == AWS_SHAPE_BLOB || pm->shape->type == AWS_SHAPE_STRING) {
            json_t *v = json_stringn_nocheck(body, resp->body_len);
            if (!v || json_object_set_new(into, pm->name, v) != 0)
                return aws_error_oom(err);
            return true;
        }
        if (is_blank(body, resp->body_len))
            return true;
        json_t *pv = json_parse_value(pm, doc, 1, err);
        if (!pv)
            return false;
        if (json_object_set_new(into, pm->name, pv) != 0)
            return aws_error_oom(err);
        return true;
    }
    return json_parse_struct_body(s, doc, into, err) != NULL;
}

bool json_parse_response(const aws_model *m, const aws_operation *op,
                         const aws_http_response *resp, json_t **out, aws_response_meta *meta,
                         aws_error *err)
{
    const char *body = resp->body ? resp->body : "";
    bool rest = m->protocol == AWS_PROTOCOL_REST_JSON;
    if (resp->status >= 300) {
        aws_error perr;
        aws_error_clear(&perr);
        json_t *doc = json_decode_body(body, resp->body_len, &perr);
        char code[AWS_ERROR_FIELD_MAX], msg[AWS_ERROR_MESSAGE_MAX];
        json_error_fields(resp, json_is_object(doc) ? doc : NULL, rest, code, sizeof code, msg,
                          sizeof msg);
        if (!doc && perr.code == AWS_ERR_PARSE) /* not JSON: the text is the message */
            aws_error_snippet(msg, sizeof msg, body, resp->body_len, 300);
        const aws_shape *es = aws_model_error_shape(m, op, code);
        json_t *members = json_object();
        if (!members) {
            json_decref(doc);
            return aws_error_oom(err);
        }
        if (es && json_is_object(doc)) {
            aws_error local;
            aws_error_clear(&local);
            if (!parse_shape_from_response(m, es, es->payload, resp, doc, members, &local)) {
                /* a malformed modeled error still reports the service error */
                json_object_clear(members);
            }
        }
        json_decref(doc);
        return fail_service(resp, code, msg, meta, members, out, err);
    }

    json_t *res = json_object();
    if (!res)
        return aws_error_oom(err);
    if (!op->output) {
        *out = res;
        return true;
    }
    const aws_shape *s = op->output->shape;
    const aws_member *sm = aws_eventstream_member(op);
    if (sm) {
        /* the body is the event stream (json: its initial-response holds the
         * other members; rest-json: headers hold them) */
        if ((rest && !rest_parse_non_body(s, resp, res, err)) ||
            !eventstream_into(m, op, sm, resp, res, err)) {
            json_decref(res);
            return false;
        }
        *out = res;
        return true;
    }
    json_t *doc = NULL;
    const aws_member *pm = op->output->payload;
    bool need_doc = !(rest && pm &&
                      (pm->shape->type == AWS_SHAPE_BLOB || pm->shape->type == AWS_SHAPE_STRING ||
                       (pm->shape->flags & AWS_SF_EVENTSTREAM)));
    if (need_doc && !(doc = json_decode_body(body, resp->body_len, err))) {
        json_decref(res);
        return false;
    }
    bool ok = parse_shape_from_response(m, s, pm, resp, doc, res, err);
    json_decref(doc);
    if (!ok) {
        json_decref(res);
        return false;
    }
    *out = res;
    return true;
}
