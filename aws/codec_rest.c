/* codec_rest: the HTTP bindings shared by rest-json and rest-xml.
 *
 * Request: members with location "uri" fill the {Label} / {Label+} (greedy:
 * '/' kept) placeholders of requestUri, "querystring" members (scalars,
 * lists: repeated keys, maps: one parameter per entry, named parameters
 * win over map entries) follow any literal query of requestUri, "header"
 * members become headers (lists comma-joined, strings with ',' or '"'
 * quoted; timestamps RFC 822; jsonvalue strings base64 of compact JSON),
 * "headers" maps become <prefix><key> headers.  The body is the payload
 * member (blob/string: raw bytes; structure: JSON / XML) or the members with
 * no location (JSON object / XML element named by the input's locationName).
 *
 * Response: headers, prefixed header maps and the status code go to their
 * members; the body is handled by codec_json.c / codec_xml.c.
 */
#include "codec_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct uri_label {
    const char *name; /* wire name */
    char *value;      /* text, not encoded */
} uri_label;

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

static bool add_query(cbuf *q, const char *k, size_t kn, const char *v, size_t vn)
{
    if (q->len)
        cb_putc(q, '&');
    cb_pct(q, k, kn, NULL);
    cb_putc(q, '=');
    return cb_pct(q, v, vn, NULL);
}

/* A scalar in a URI or query string. */
static bool scalar_text(ser_ctx *c, const aws_member *mb, const json_t *v, cbuf *out)
{
    return ser_scalar_text(c, mb, v, "iso8601", out);
}

static bool header_value_ok(ser_ctx *c, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return ser_fail(c, "header values cannot contain CR, LF or NUL");
    return true;
}

/* The text of a header member. */
static bool header_text(ser_ctx *c, const aws_member *mb, const json_t *v, cbuf *out)
{
    const aws_shape *s = mb->shape;
    if (s->type == AWS_SHAPE_LIST) {
        if (!ser_expect(c, v, JSON_ARRAY, "array"))
            return false;
        size_t i;
        json_t *x;
        bool first = true;
        json_array_foreach(v, i, x)
        {
            if (json_is_null(x))
                continue;
            if (!first)
                cb_puts(out, ", ");
            first = false;
            size_t old = path_push_index(c, i);
            cbuf t = {0};
            bool ok = header_text(c, &s->member, x, &t);
            path_pop(c, old);
            if (!ok) {
                cb_free(&t);
                return false;
            }
            if (s->member.shape->type == AWS_SHAPE_STRING &&
                (memchr(t.data ? t.data : "", ',', t.len) ||
                 memchr(t.data ? t.data : "", '"', t.len))) {
                cb_putc(out, '"');
                for (size_t k = 0; k < t.len; k++) {
                    if (t.data[k] == '"' || t.data[k] == '\\')
                        cb_putc(out, '\\');
                    cb_putc(out, t.data[k]);
                }
                cb_putc(out, '"');
            } else {
                cb_put(out, t.data ? t.data : "", t.len);
            }
            cb_free(&t);
        }
        return !out->oom || ser_oom(c);
    }
    if (s->type == AWS_SHAPE_STRING && (mb->flags & AWS_MF_JSONVALUE)) {
        cbuf j = {0};
        if (!json_write_any(c, v, &j)) {
            cb_free(&j);
            return false;
        }
        char *b64 = aws_base64_encode(j.data ? j.data : "", j.len, NULL);
        cb_free(&j);
        if (!b64)
            return ser_oom(c);
        bool ok = cb_puts(out, b64);
        aws_free(b64);
        return ok || ser_oom(c);
    }
    return ser_scalar_text(c, mb, v, "rfc822", out);
}

/* Expands requestUri's path template into *path and its literal query into q. */
static bool expand_uri(ser_ctx *c, const uri_label *labels, size_t nl, char **path, cbuf *q)
{
    const char *t = c->op->request_uri;
    const char *qm = strchr(t, '?');
    size_t tlen = qm ? (size_t)(qm - t) : strlen(t);
    cbuf p = {0};
    for (size_t i = 0; i < tlen;) {
        if (t[i] != '{') {
            cb_putc(&p, t[i++]);
            continue;
        }
        const char *close = memchr(t + i, '}', tlen - i);
        if (!close) {
            cb_free(&p);
            return ser_fail(c, "malformed requestUri %s", t);
        }
        size_t nlen = (size_t)(close - (t + i) - 1);
        const char *name = t + i + 1;
        bool greedy = nlen && name[nlen - 1] == '+';
        if (greedy)
            nlen--;
        const uri_label *lb = NULL;
        for (size_t k = 0; k < nl; k++)
            if (strlen(labels[k].name) == nlen && !strncmp(labels[k].name, name, nlen))
                lb = &labels[k];
        if (!lb) {
            cb_free(&p);
            return ser_fail(c, "missing required URI parameter %.*s", (int)nlen, name);
        }
        cb_pct(&p, lb->value, strlen(lb->value), greedy ? "/" : NULL);
        i = (size_t)(close - t) + 1;
    }
    if (qm && qm[1])
        cb_puts(q, qm + 1);
    if (!(*path = cb_take(&p, NULL)))
        return ser_oom(c);
    return !q->oom || ser_oom(c);
}

/* The body: payload member or the members with no location. */
static bool rest_body(ser_ctx *c, const json_t *input, aws_http_request *out,
                      const char **ctype)
{
    bool xml = c->m->protocol == AWS_PROTOCOL_REST_XML;
    const aws_member *in = c->op->input;
    const aws_shape *s = in->shape;
    cbuf b = {0};
    bool ok = true;
    *ctype = NULL;
    if (in->payload) {
        const aws_member *pm = in->payload;
        const json_t *v = json_object_get(input, pm->name);
        if (v && json_is_null(v))
            v = NULL;
        size_t old = path_push(c, pm->name);
        if (pm->shape->type == AWS_SHAPE_BLOB || pm->shape->type == AWS_SHAPE_STRING) {
            /* blobs are application/octet-stream even when empty */
            if (pm->shape->type == AWS_SHAPE_BLOB)
                *ctype = "application/octet-stream";
            if (v && (ok = ser_expect(c, v, JSON_STRING, "string"))) {
                cb_put(&b, json_string_value(v), json_string_length(v));
                if (pm->shape->type == AWS_SHAPE_STRING)
                    *ctype = "text/plain";
            }
        } else if (v) {
            if (xml) {
                ok = xml_write_struct(c, pm, v, aws_member_wire_name(pm), false, &b);
                *ctype = "application/xml";
            } else {
                ok = json_write_value(c, pm, v, &b);
                *ctype = "application/json";
            }
        } else if (!xml && !(pm->shape->flags & AWS_SF_UNION)) {
            cb_puts(&b, "{}");
            *ctype = "application/json";
        }
        path_pop(c, old);
    } else {
        bool has_body_members = false, has_body_values = false;
        for (size_t i = 0; i < s->member_count; i++) {
            if (s->members[i].location != AWS_LOC_BODY)
                continue;
            has_body_members = true;
            const json_t *v = json_object_get(input, s->members[i].name);
            if (v && !json_is_null(v))
                has_body_values = true;
        }
        if (has_body_values) {
            if (xml) {
                const char *root = in->location_name ? in->location_name : s->name;
                ok = xml_write_struct(c, in, input, root, true, &b);
                *ctype = "application/xml";
            } else {
                ok = json_write_struct_body(c, s, input, &b);
                *ctype = "application/json";
            }
        } else if (has_body_members && !xml) {
            cb_puts(&b, "{}");
            *ctype = "application/json";
        }
    }
    if (!ok) {
        cb_free(&b);
        return false;
    }
    if (!(out->body = cb_take(&b, &out->body_len)))
        return ser_oom(c);
    return true;
}

bool rest_serialize(ser_ctx *c, const json_t *input, aws_http_request *out)
{
    const aws_shape *s = c->op->input ? c->op->input->shape : NULL;
    uri_label *labels = NULL;
    size_t nl = 0;
    cbuf q = {0};
    bool ok = true;
    if (s && input && !check_members(c, s, input))
        return false;
    if (s && s->member_count && !(labels = aws_calloc(s->member_count, sizeof *labels)))
        return ser_oom(c);

    /* Query parameters named by querystring members beat map entries. */
    for (size_t i = 0; ok && s && i < s->member_count; i++) {
        const aws_member *mb = &s->members[i];
        const json_t *v = json_object_get(input, mb->name);
        if (!v || json_is_null(v) || mb->location == AWS_LOC_BODY ||
            mb->location == AWS_LOC_STATUSCODE)
            continue;
        size_t old = path_push(c, mb->name);
        const char *wire = aws_member_wire_name(mb);
        cbuf t = {0};
        switch (mb->location) {
        case AWS_LOC_URI:
            if ((ok = scalar_text(c, mb, v, &t)) && t.len == 0)
                ok = ser_fail(c, "a URI label cannot be empty");
            if (ok) {
                labels[nl].name = wire;
                labels[nl].value = cb_take(&t, NULL);
                ok = labels[nl++].value != NULL || ser_oom(c);
            }
            break;
        case AWS_LOC_QUERYSTRING:
            if (mb->shape->type == AWS_SHAPE_MAP) {
                if (!(ok = ser_expect(c, v, JSON_OBJECT, "object")))
                    break;
                const char *k;
                json_t *x;
                json_object_foreach((json_t *)v, k, x)
                {
                    /* a named querystring member with a value wins */
                    bool shadowed = false;
                    for (size_t j = 0; j < s->member_count; j++) {
                        const aws_member *o = &s->members[j];
                        const json_t *ov = json_object_get(input, o->name);
                        if (o->location == AWS_LOC_QUERYSTRING &&
                            o->shape->type != AWS_SHAPE_MAP && ov && !json_is_null(ov) &&
                            !strcmp(aws_member_wire_name(o), k))
                            shadowed = true;
                    }
                    if (shadowed || json_is_null(x))
                        continue;
                    size_t ko = path_push_key(c, k);
                    const aws_member *vm = &mb->shape->value;
                    if (vm->shape->type == AWS_SHAPE_LIST) {
                        size_t idx;
                        json_t *item;
                        if ((ok = ser_expect(c, x, JSON_ARRAY, "array")))
                            json_array_foreach(x, idx, item)
                            {
                                t.len = 0;
                                if (!(ok = scalar_text(c, &vm->shape->member, item, &t)))
                                    break;
                                add_query(&q, k, strlen(k), t.data ? t.data : "", t.len);
                            }
                    } else if ((ok = scalar_text(c, vm, x, &t))) {
                        add_query(&q, k, strlen(k), t.data ? t.data : "", t.len);
                    }
                    t.len = 0;
                    path_pop(c, ko);
                    if (!ok)
                        break;
                }
            } else if (mb->shape->type == AWS_SHAPE_LIST) {
                size_t idx;
                json_t *item;
                if ((ok = ser_expect(c, v, JSON_ARRAY, "array")))
                    json_array_foreach(v, idx, item)
                    {
                        t.len = 0;
                        size_t io = path_push_index(c, idx);
                        ok = scalar_text(c, &mb->shape->member, item, &t);
                        path_pop(c, io);
                        if (!ok)
                            break;
                        add_query(&q, wire, strlen(wire), t.data ? t.data : "", t.len);
                    }
            } else if ((ok = scalar_text(c, mb, v, &t))) {
                add_query(&q, wire, strlen(wire), t.data ? t.data : "", t.len);
            }
            break;
        case AWS_LOC_HEADER:
            if (mb->shape->type == AWS_SHAPE_LIST && json_is_array(v) && json_array_size(v) == 0)
                break; /* empty lists send no header */
            if ((ok = header_text(c, mb, v, &t)) &&
                (ok = header_value_ok(c, t.data ? t.data : "", t.len)))
                ok = req_add_header(out, wire, t.data ? t.data : "") || ser_oom(c);
            break;
        case AWS_LOC_HEADERS: {
            if (!(ok = ser_expect(c, v, JSON_OBJECT, "object")))
                break;
            const char *k;
            json_t *x;
            json_object_foreach((json_t *)v, k, x)
            {
                if (json_is_null(x))
                    continue;
                size_t ko = path_push_key(c, k);
                t.len = 0;
                cbuf name = {0};
                cb_puts(&name, wire);
                cb_puts(&name, k);
                ok = header_text(c, &mb->shape->value, x, &t) &&
                     header_value_ok(c, t.data ? t.data : "", t.len) &&
                     header_value_ok(c, name.data ? name.data : "", name.len) &&
                     (req_add_header(out, name.data ? name.data : "", t.data ? t.data : "") ||
                      ser_oom(c));
                cb_free(&name);
                path_pop(c, ko);
                if (!ok)
                    break;
            }
            break;
        }
        default:
            break;
        }
        cb_free(&t);
        path_pop(c, old);
    }
    if (ok && q.oom)
        ok = ser_oom(c);

    /* Path, then the literal query of requestUri goes first. */
    cbuf query = {0};
    if (ok)
        ok = expand_uri(c, labels, nl, &out->path, &query);
    if (ok && q.len) {
        if (query.len)
            cb_putc(&query, '&');
        cb_put(&query, q.data, q.len);
    }
    for (size_t i = 0; i < nl; i++)
        aws_free(labels[i].value);
    aws_free(labels);
    cb_free(&q);
    if (ok && !(out->query = cb_take(&query, NULL)))
        ok = ser_oom(c);
    cb_free(&query);
    if (!ok)
        return false;

    const char *ctype = NULL;
    if (s) {
        if (!rest_body(c, input, out, &ctype))
            return false;
    } else if (!(out->body = aws_strdup(""))) {
        return ser_oom(c);
    }
    bool blob_payload = s && c->op->input->payload &&
                        c->op->input->payload->shape->type == AWS_SHAPE_BLOB;
    if (ctype && (out->body_len || blob_payload) &&
        !aws_http_request_header(out, "Content-Type") &&
        !req_add_header(out, "Content-Type", ctype))
        return ser_oom(c);
    return true;
}

/* ------------------------------------------------------------------------
 * Responses: headers and status code
 * ---------------------------------------------------------------------- */

/* Splits a list header: commas separate items, items may be "quoted" (with
 * \" escapes); RFC 822 dates ("Mon, 16 Dec 2019 ...") keep their comma. */
static json_t *split_header_list(const aws_member *lm, const char *h, aws_error *err)
{
    const aws_member *item = &lm->shape->member;
    bool dates = item->shape->type == AWS_SHAPE_TIMESTAMP;
    json_t *arr = json_array();
    if (!arr)
        return aws_error_oom(err), NULL;
    const char *p = h;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        cbuf t = {0};
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                cb_putc(&t, *p++);
            }
            if (*p == '"')
                p++;
            while (*p && *p != ',')
                p++;
        } else {
            const char *start = p;
            p += strcspn(p, ",");
            if (dates && *p == ',' && p - start <= 9 && isalpha((unsigned char)*start)) {
                /* "Mon," is a day name: the date goes on to the next comma */
                p++;
                p += strcspn(p, ",");
            }
            const char *end = p;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            cb_put(&t, start, (size_t)(end - start));
        }
        if (*p == ',')
            p++;
        if (t.oom) {
            cb_free(&t);
            json_decref(arr);
            return aws_error_oom(err), NULL;
        }
        json_t *v = value_from_text(item, t.data ? t.data : "", t.len, err);
        cb_free(&t);
        if (!v || json_array_append_new(arr, v) != 0) {
            if (v)
                aws_error_oom(err);
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

bool rest_parse_non_body(const aws_shape *s, const aws_http_response *resp, json_t *obj,
                         aws_error *err)
{
    for (size_t i = 0; i < s->member_count; i++) {
        const aws_member *mb = &s->members[i];
        json_t *v = NULL;
        switch (mb->location) {
        case AWS_LOC_HEADER: {
            const char *h = resp_header(resp, aws_member_wire_name(mb));
            if (!h)
                continue;
            if (mb->shape->type == AWS_SHAPE_LIST)
                v = split_header_list(mb, h, err);
            else
                v = value_from_text(mb, h, strlen(h), err);
            if (!v)
                return false;
            break;
        }
        case AWS_LOC_HEADERS: {
            const char *prefix = mb->location_name ? mb->location_name : "";
            size_t pl = strlen(prefix);
            if (!(v = json_object()))
                return aws_error_oom(err);
            for (size_t k = 0; k < resp->header_count; k++) {
                const char *name = resp->headers[k].name;
                if (!name || strncasecmp(name, prefix, pl) != 0)
                    continue;
                const char *hv = resp->headers[k].value ? resp->headers[k].value : "";
                json_t *x = value_from_text(&mb->shape->value, hv, strlen(hv), err);
                if (!x || json_object_set_new(v, name + pl, x) != 0) {
                    if (x)
                        aws_error_oom(err);
                    json_decref(v);
                    return false;
                }
            }
            break;
        }
        case AWS_LOC_STATUSCODE:
            v = json_integer(resp->status);
            break;
        default:
            continue;
        }
        if (!v || json_object_set_new(obj, mb->name, v) != 0)
            return aws_error_oom(err);
    }
    return true;
}
