/* codec_xml: XML for the query, ec2 and rest-xml protocols.
 *
 * Reading: expat builds a small DOM (element local names, raw attributes,
 * the text before an element's first child, which is all a leaf has); the
 * callbacks never longjmp: on out-of-memory, a DTD or excessive depth they
 * record the reason and stop the parser.  The DOM is then read by shape, as
 * botocore does: structure members by (location)name, lists from the
 * children of their element (flattened lists: the repeated elements
 * themselves), maps from entry/key/value elements, scalars from text.
 *
 * Writing (rest-xml request bodies): elements named by locationName, xmlns /
 * xmlns:prefix from xmlNamespace, xmlAttribute members as attributes,
 * wrapped or flattened lists and maps.
 */
#include "codec_internal.h"

#include <expat.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------
 * DOM
 * ---------------------------------------------------------------------- */

typedef struct xbuild {
    XML_Parser p;
    xnode *root, *cur;
    int depth;
    enum { XB_OK, XB_OOM, XB_DEEP, XB_DTD } status;
} xbuild;

static void xb_stop(xbuild *b, int status)
{
    if (b->status == XB_OK)
        b->status = status;
    XML_StopParser(b->p, XML_FALSE);
}

void xml_free(xnode *n)
{
    while (n) {
        xml_free(n->first);
        xnode *next = n->next;
        aws_free(n->name);
        if (n->attrs) {
            for (char **a = n->attrs; *a; a++)
                aws_free(*a);
            aws_free(n->attrs);
        }
        aws_free(n->text);
        aws_free(n);
        n = next;
    }
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    xbuild *b = ud;
    if (b->status != XB_OK)
        return;
    if (++b->depth > CODEC_XML_MAX_DEPTH) {
        xb_stop(b, XB_DEEP);
        return;
    }
    xnode *n = aws_calloc(1, sizeof *n);
    if (!n) {
        xb_stop(b, XB_OOM);
        return;
    }
    const char *colon = strchr(name, ':');
    n->name = aws_strdup(colon ? colon + 1 : name);
    size_t na = 0;
    while (attrs[na])
        na++;
    n->attrs = aws_calloc(na + 1, sizeof *n->attrs);
    bool ok = n->name && n->attrs;
    for (size_t i = 0; ok && i < na; i++)
        ok = (n->attrs[i] = aws_strdup(attrs[i])) != NULL;
    if (!ok) {
        xml_free(n);
        xb_stop(b, XB_OOM);
        return;
    }
    n->parent = b->cur;
    if (!b->cur) {
        b->root = n;
    } else {
        if (b->cur->last)
            b->cur->last->next = n;
        else
            b->cur->first = n;
        b->cur->last = n;
    }
    b->cur = n;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    (void)name;
    xbuild *b = ud;
    if (b->status != XB_OK || !b->cur)
        return;
    b->depth--;
    b->cur = b->cur->parent;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xbuild *b = ud;
    xnode *n = b->cur;
    /* only the text before the first child (a leaf's value) is kept */
    if (b->status != XB_OK || !n || n->first || len <= 0)
        return;
    size_t need = n->text_len + (size_t)len + 1;
    if (need > n->text_cap_) {
        size_t cap = n->text_cap_ ? n->text_cap_ : 32;
        while (cap < need)
            cap *= 2;
        char *t = aws_realloc(n->text, cap);
        if (!t) {
            xb_stop(b, XB_OOM);
            return;
        }
        n->text = t;
        n->text_cap_ = cap;
    }
    memcpy(n->text + n->text_len, s, (size_t)len);
    n->text_len += (size_t)len;
    n->text[n->text_len] = '\0';
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    xb_stop(ud, XB_DTD);
}

xnode *xml_parse(const char *s, size_t n, aws_error *err)
{
    static const XML_Memory_Handling_Suite mem = {aws_malloc, aws_realloc, aws_free};
    xbuild b = {0};
    b.p = XML_ParserCreate_MM(NULL, &mem, NULL);
    if (!b.p)
        return aws_error_oom(err), NULL;
    XML_SetUserData(b.p, &b);
    XML_SetElementHandler(b.p, on_start, on_end);
    XML_SetCharacterDataHandler(b.p, on_text);
    XML_SetStartDoctypeDeclHandler(b.p, on_doctype);
    enum XML_Status st = XML_STATUS_OK;
    while (n && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++, n--; /* expat refuses anything before an XML declaration */
    size_t off = 0;
    do {
        size_t chunk = n - off > (1u << 30) ? (1u << 30) : n - off;
        st = XML_Parse(b.p, s + off, (int)chunk, off + chunk == n);
        off += chunk;
    } while (st == XML_STATUS_OK && off < n);
    if (st != XML_STATUS_OK || b.status != XB_OK || !b.root) {
        switch (b.status) {
        case XB_OOM: aws_error_oom(err); break;
        case XB_DEEP:
            aws_error_set(err, AWS_ERR_PARSE, "response XML nested deeper than %d levels",
                          CODEC_XML_MAX_DEPTH);
            break;
        case XB_DTD: aws_error_set(err, AWS_ERR_PARSE, "response XML has a DTD"); break;
        default:
            if (XML_GetErrorCode(b.p) == XML_ERROR_NO_MEMORY)
                aws_error_oom(err);
            else
                aws_error_set(err, AWS_ERR_PARSE, "response is not valid XML (line %lu: %s)",
                              (unsigned long)XML_GetCurrentLineNumber(b.p),
                              XML_ErrorString(XML_GetErrorCode(b.p)));
        }
        XML_ParserFree(b.p);
        xml_free(b.root);
        return NULL;
    }
    XML_ParserFree(b.p);
    return b.root;
}

const xnode *xml_child(const xnode *n, const char *name)
{
    for (const xnode *c = n ? n->first : NULL; c; c = c->next)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

const char *xml_attr(const xnode *n, const char *name)
{
    if (!n || !n->attrs)
        return NULL;
    for (char **a = n->attrs; a[0] && a[1]; a += 2)
        if (!strcmp(a[0], name))
            return a[1];
    return NULL;
}

static const char *node_text(const xnode *n, size_t *len)
{
    *len = n->text_len;
    return n->text ? n->text : "";
}

/* ------------------------------------------------------------------------
 * Reading by shape
 * ---------------------------------------------------------------------- */

static bool set_new(json_t *obj, const char *k, json_t *v, aws_error *err)
{
    if (!v)
        return false;
    if (json_object_set_new(obj, k, v) != 0)
        return aws_error_oom(err);
    return true;
}

static bool append_new(json_t *arr, json_t *v, aws_error *err)
{
    if (!v)
        return false;
    if (json_array_append_new(arr, v) != 0)
        return aws_error_oom(err);
    return true;
}

/* One map entry (an element holding key and value elements) into obj. */
static bool map_entry(const aws_shape *s, const xnode *entry, json_t *obj, int depth,
                      aws_error *err)
{
    const char *kname = s->key.location_name ? s->key.location_name : "key";
    const char *vname = s->value.location_name ? s->value.location_name : "value";
    const xnode *kn = xml_child(entry, kname), *vn = xml_child(entry, vname);
    if (!kn || !vn)
        return true; /* incomplete entries are skipped */
    size_t klen;
    const char *k = node_text(kn, &klen);
    char *key = aws_strndup(k, klen);
    if (!key)
        return aws_error_oom(err);
    json_t *v = xml_parse_value(&s->value, vn, depth + 1, err);
    bool ok = set_new(obj, key, v, err);
    aws_free(key);
    return ok;
}

/* Name of the elements that carry member mb inside its structure. */
static const char *member_xml_name(const aws_member *mb)
{
    if (mb->shape->type == AWS_SHAPE_LIST && (mb->flags & AWS_MF_FLATTENED) &&
        mb->shape->member.location_name)
        return mb->shape->member.location_name;
    return aws_member_wire_name(mb);
}

static json_t *unknown_union(const aws_shape *s, const xnode *node, aws_error *err)
{
    const xnode *only = NULL;
    size_t count = 0;
    for (const xnode *c = node->first; c; c = c->next) {
        count++;
        only = c;
    }
    if (count != 1)
        return NULL;
    for (size_t i = 0; i < s->member_count; i++)
        if (!strcmp(member_xml_name(&s->members[i]), only->name))
            return NULL;
    json_t *r = json_pack("{s:{s:s}}", "SDK_UNKNOWN_MEMBER", "name", only->name);
    if (!r)
        aws_error_oom(err);
    return r;
}

bool xml_parse_struct_into(const aws_shape *s, const xnode *node, json_t *obj, int depth,
                           aws_error *err)
{
    if (depth > CODEC_MAX_DEPTH)
        return aws_error_set(err, AWS_ERR_PARSE, "response nested deeper than %d levels",
                             CODEC_MAX_DEPTH);
    for (size_t i = 0; i < s->member_count; i++) {
        const aws_member *mb = &s->members[i];
        if (mb->location == AWS_LOC_HEADER || mb->location == AWS_LOC_HEADERS ||
            mb->location == AWS_LOC_STATUSCODE || (mb->flags & AWS_MF_EVENTHEADER))
            continue;
        if (mb->flags & AWS_MF_XML_ATTRIBUTE) {
            const char *a = xml_attr(node, aws_member_wire_name(mb));
            if (a && !set_new(obj, mb->name, value_from_text(mb, a, strlen(a), err), err))
                return false;
            continue;
        }
        const char *name = member_xml_name(mb);
        bool flat = mb->flags & AWS_MF_FLATTENED;
        if (flat && (mb->shape->type == AWS_SHAPE_LIST || mb->shape->type == AWS_SHAPE_MAP)) {
            /* botocore names a flattened list's elements after the list
             * member's locationName, Smithy after the structure member:
             * accept the latter when the former finds nothing */
            if (strcmp(name, aws_member_wire_name(mb)) && !xml_child(node, name))
                name = aws_member_wire_name(mb);
            json_t *coll = NULL;
            for (const xnode *c = node->first; c; c = c->next) {
                if (strcmp(c->name, name))
                    continue;
                if (!coll) {
                    coll = mb->shape->type == AWS_SHAPE_LIST ? json_array() : json_object();
                    if (!coll)
                        return aws_error_oom(err);
                }
                bool ok = mb->shape->type == AWS_SHAPE_LIST
                              ? append_new(coll, xml_parse_value(&mb->shape->member, c, depth + 1,
                                                                 err),
                                           err)
                              : map_entry(mb->shape, c, coll, depth + 1, err);
                if (!ok) {
                    json_decref(coll);
                    return false;
                }
            }
            if (coll && !set_new(obj, mb->name, coll, err))
                return false;
            continue;
        }
        const xnode *c = xml_child(node, name);
        if (c && !set_new(obj, mb->name, xml_parse_value(mb, c, depth + 1, err), err))
            return false;
    }
    return true;
}

json_t *xml_parse_value(const aws_member *mb, const xnode *node, int depth, aws_error *err)
{
    const aws_shape *s = mb->shape;
    if (depth > CODEC_MAX_DEPTH)
        return aws_error_set(err, AWS_ERR_PARSE, "response nested deeper than %d levels",
                             CODEC_MAX_DEPTH), NULL;
    json_t *r;
    switch (s->type) {
    case AWS_SHAPE_STRUCTURE:
        if (s->flags & AWS_SF_UNION) {
            aws_error local;
            aws_error_clear(&local);
            r = unknown_union(s, node, &local);
            if (r || local.code != AWS_ERR_NONE) {
                if (!r && err)
                    *err = local;
                return r;
            }
        }
        if (!(r = json_object()))
            return aws_error_oom(err), NULL;
        if (!xml_parse_struct_into(s, node, r, depth, err)) {
            json_decref(r);
            return NULL;
        }
        return r;
    case AWS_SHAPE_LIST:
        if (!(r = json_array()))
            return aws_error_oom(err), NULL;
        if (mb->flags & AWS_MF_FLATTENED) {
            /* a flattened list reached directly (e.g. a payload): one item */
            if (!append_new(r, xml_parse_value(&s->member, node, depth + 1, err), err)) {
                json_decref(r);
                return NULL;
            }
            return r;
        }
        for (const xnode *c = node->first; c; c = c->next)
            if (!append_new(r, xml_parse_value(&s->member, c, depth + 1, err), err)) {
                json_decref(r);
                return NULL;
            }
        return r;
    case AWS_SHAPE_MAP:
        if (!(r = json_object()))
            return aws_error_oom(err), NULL;
        if (mb->flags & AWS_MF_FLATTENED) {
            if (!map_entry(s, node, r, depth, err)) {
                json_decref(r);
                return NULL;
            }
            return r;
        }
        for (const xnode *c = node->first; c; c = c->next)
            if (!map_entry(s, c, r, depth, err)) {
                json_decref(r);
                return NULL;
            }
        return r;
    default: {
        size_t len;
        const char *t = node_text(node, &len);
        return value_from_text(mb, t, len, err);
    }
    }
}

/* ------------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------- */

bool xml_escape(cbuf *b, const char *s, size_t n, bool attr)
{
    if (!utf8_valid(s, n))
        return false;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *rep = NULL;
        switch (ch) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = attr ? "&quot;" : NULL; break;
        case '\r': rep = "&#13;"; break;
        case '\n': rep = attr ? "&#10;" : NULL; break;
        case '\t': rep = attr ? "&#9;" : NULL; break;
        default:
            if (ch < 0x20)
                return false; /* not representable in XML 1.0 */
        }
        if (!rep)
            continue;
        cb_put(b, s + run, i - run);
        cb_puts(b, rep);
        run = i + 1;
    }
    cb_put(b, s + run, n - run);
    return true;
}

static bool xw_escape(ser_ctx *c, cbuf *b, const char *s, size_t n, bool attr)
{
    if (!xml_escape(b, s, n, attr))
        return ser_fail(c, "text is not valid UTF-8 or holds a control character XML cannot carry");
    return !b->oom || ser_oom(c);
}

static void xw_ns(const aws_member *mb, cbuf *b)
{
    if (!mb || !mb->xml_ns_uri)
        return;
    cb_puts(b, " xmlns");
    if (mb->xml_ns_prefix && *mb->xml_ns_prefix) {
        cb_putc(b, ':');
        cb_puts(b, mb->xml_ns_prefix);
    }
    cb_puts(b, "=\"");
    xml_escape(b, mb->xml_ns_uri, strlen(mb->xml_ns_uri), true);
    cb_putc(b, '"');
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

bool xml_write_struct(ser_ctx *c, const aws_member *mb, const json_t *v, const char *root,
                      bool body_only, cbuf *b)
{
    const aws_shape *s = mb->shape;
    if (s->flags & AWS_SF_DOCUMENT)
        return ser_fail(c, "document values cannot be written as XML");
    if (!ser_expect(c, v, JSON_OBJECT, "object") || !check_members(c, s, v))
        return false;
    cb_putc(b, '<');
    cb_puts(b, root);
    xw_ns(mb, b);
    for (size_t i = 0; i < s->member_count; i++) {
        const aws_member *m = &s->members[i];
        const json_t *mv = json_object_get(v, m->name);
        if (!(m->flags & AWS_MF_XML_ATTRIBUTE) || !mv || json_is_null(mv))
            continue;
        size_t old = path_push(c, m->name);
        cbuf t = {0};
        bool ok = ser_scalar_text(c, m, mv, "iso8601", &t);
        if (ok) {
            cb_putc(b, ' ');
            cb_puts(b, aws_member_wire_name(m));
            cb_puts(b, "=\"");
            ok = xw_escape(c, b, t.data ? t.data : "", t.len, true);
            cb_putc(b, '"');
        }
        cb_free(&t);
        path_pop(c, old);
        if (!ok)
            return false;
    }
    cb_putc(b, '>');
    for (size_t i = 0; i < s->member_count; i++) {
        const aws_member *m = &s->members[i];
        const json_t *mv = json_object_get(v, m->name);
        if ((m->flags & AWS_MF_XML_ATTRIBUTE) || !mv || json_is_null(mv) ||
            (body_only && m->location != AWS_LOC_BODY))
            continue;
        size_t old = path_push(c, m->name);
        bool ok = xml_write_value(c, m, mv, aws_member_wire_name(m), b);
        path_pop(c, old);
        if (!ok)
            return false;
    }
    cb_puts(b, "</");
    cb_puts(b, root);
    cb_putc(b, '>');
    return !b->oom || ser_oom(c);
}

static bool xw_scalar(ser_ctx *c, const aws_member *mb, const json_t *v, const char *name,
                      cbuf *b)
{
    cbuf t = {0};
    if (!ser_scalar_text(c, mb, v, "iso8601", &t)) {
        cb_free(&t);
        return false;
    }
    cb_putc(b, '<');
    cb_puts(b, name);
    xw_ns(mb, b);
    cb_putc(b, '>');
    bool ok = xw_escape(c, b, t.data ? t.data : "", t.len, false);
    cb_free(&t);
    cb_puts(b, "</");
    cb_puts(b, name);
    cb_putc(b, '>');
    return ok && (!b->oom || ser_oom(c));
}

bool xml_write_value(ser_ctx *c, const aws_member *mb, const json_t *v, const char *name,
                     cbuf *b)
{
    const aws_shape *s = mb->shape;
    if (!ser_enter(c))
        return false;
    bool ok = true;
    switch (s->type) {
    case AWS_SHAPE_STRUCTURE:
        ok = xml_write_struct(c, mb, v, name, false, b);
        break;
    case AWS_SHAPE_LIST: {
        if (!(ok = ser_expect(c, v, JSON_ARRAY, "array")))
            break;
        bool flat = mb->flags & AWS_MF_FLATTENED;
        const char *item = flat ? name
                                : (s->member.location_name ? s->member.location_name : "member");
        if (!flat) {
            cb_putc(b, '<');
            cb_puts(b, name);
            xw_ns(mb, b);
            cb_putc(b, '>');
        }
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (json_is_null(x))
                continue;
            size_t old = path_push_index(c, i);
            ok = xml_write_value(c, &s->member, x, item, b);
            path_pop(c, old);
            if (!ok)
                break;
        }
        if (!flat) {
            cb_puts(b, "</");
            cb_puts(b, name);
            cb_putc(b, '>');
        }
        break;
    }
    case AWS_SHAPE_MAP: {
        if (!(ok = ser_expect(c, v, JSON_OBJECT, "object")))
            break;
        bool flat = mb->flags & AWS_MF_FLATTENED;
        const char *entry = flat ? name : "entry";
        const char *kname = s->key.location_name ? s->key.location_name : "key";
        const char *vname = s->value.location_name ? s->value.location_name : "value";
        if (!flat) {
            cb_putc(b, '<');
            cb_puts(b, name);
            xw_ns(mb, b);
            cb_putc(b, '>');
        }
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            if (json_is_null(x))
                continue;
            size_t old = path_push_key(c, k);
            json_t *kv = json_string(k);
            cb_putc(b, '<');
            cb_puts(b, entry);
            cb_putc(b, '>');
            ok = kv ? xw_scalar(c, &s->key, kv, kname, b) : ser_oom(c);
            json_decref(kv);
            if (ok)
                ok = xml_write_value(c, &s->value, x, vname, b);
            cb_puts(b, "</");
            cb_puts(b, entry);
            cb_putc(b, '>');
            path_pop(c, old);
            if (!ok)
                break;
        }
        if (!flat) {
            cb_puts(b, "</");
            cb_puts(b, name);
            cb_putc(b, '>');
        }
        break;
    }
    default:
        ok = xw_scalar(c, mb, v, name, b);
        break;
    }
    ser_leave(c);
    return ok && (!b->oom || ser_oom(c));
}

/* ------------------------------------------------------------------------
 * Responses
 * ---------------------------------------------------------------------- */

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
            return false;
    return true;
}

static void copy_text(const xnode *n, char *out, size_t cap)
{
    if (n)
        snprintf(out, cap, "%.*s", (int)n->text_len, n->text ? n->text : "");
}

/* The <Error> element: the root itself (S3), ErrorResponse/Error (query,
 * rest-xml), Response/Errors/Error (ec2). */
static const xnode *error_node(const xnode *root)
{
    if (!strcmp(root->name, "Error"))
        return root;
    const xnode *e = xml_child(root, "Error");
    if (e)
        return e;
    const xnode *errs = xml_child(root, "Errors");
    if (errs && (e = xml_child(errs, "Error")))
        return e;
    return root;
}

/* S3 answers some operations (CopyObject, CompleteMultipartUpload,
 * UploadPartCopy) with 200 and an error document. */
static bool is_error_document(const xnode *root)
{
    return !strcmp(root->name, "Error") && xml_child(root, "Code");
}

static bool xml_error(const aws_model *m, const aws_operation *op, const aws_http_response *resp,
                      json_t **out, aws_response_meta *meta, aws_error *err)
{
    const char *body = resp->body ? resp->body : "";
    char code[AWS_ERROR_FIELD_MAX], msg[AWS_ERROR_MESSAGE_MAX];
    snprintf(code, sizeof code, "%d", resp->status);
    snprintf(msg, sizeof msg, "%s", http_reason(resp->status));
    if (blank(body, resp->body_len))
        return fail_service(resp, code, msg, meta, NULL, out, err);
    aws_error perr;
    aws_error_clear(&perr);
    xnode *root = xml_parse(body, resp->body_len, &perr);
    if (!root) {
        if (perr.code == AWS_ERR_NO_MEMORY) {
            if (err)
                *err = perr;
            return false;
        }
        /* not XML: keep the status as the code, the text as the message */
        aws_error_snippet(msg, sizeof msg, body, resp->body_len, 300);
        return fail_service(resp, code, msg, meta, NULL, out, err);
    }
    const xnode *en = error_node(root);
    const xnode *cn = xml_child(en, "Code");
    if (cn)
        copy_text(cn, code, sizeof code);
    const xnode *mn = xml_child(en, "Message");
    if (!mn)
        mn = xml_child(en, "message");
    msg[0] = '\0';
    copy_text(mn, msg, sizeof msg);
    if (!meta->request_id[0]) {
        const xnode *rn = xml_child(root, "RequestId");
        if (!rn)
            rn = xml_child(root, "RequestID");
        if (!rn)
            rn = xml_child(en, "RequestId");
        copy_text(rn, meta->request_id, sizeof meta->request_id);
    }
    if (!meta->host_id[0])
        copy_text(xml_child(en, "HostId"), meta->host_id, sizeof meta->host_id);
    json_t *members = json_object();
    if (!members) {
        xml_free(root);
        return aws_error_oom(err);
    }
    const aws_shape *es = aws_model_error_shape(m, op, code);
    if (es) {
        aws_error local;
        aws_error_clear(&local);
        bool ok = xml_parse_struct_into(es, en, members, 0, &local);
        if (ok && m->protocol == AWS_PROTOCOL_REST_XML)
            ok = rest_parse_non_body(es, resp, members, &local);
        if (!ok)
            json_object_clear(members); /* still report the service error */
    }
    xml_free(root);
    return fail_service(resp, code, msg, meta, members, out, err);
}

bool xml_parse_response(const aws_model *m, const aws_operation *op,
                        const aws_http_response *resp, json_t **out, aws_response_meta *meta,
                        aws_error *err)
{
    if (resp->status >= 300)
        return xml_error(m, op, resp, out, meta, err);
    const char *body = resp->body ? resp->body : "";
    json_t *res = json_object();
    if (!res)
        return aws_error_oom(err);
    const aws_shape *s = op->output ? op->output->shape : NULL;
    bool rest = m->protocol == AWS_PROTOCOL_REST_XML;
    if (!s) {
        *out = res;
        return true;
    }
    if (rest && !rest_parse_non_body(s, resp, res, err))
        goto fail;
    if (rest && op->output->payload) {
        const aws_member *pm = op->output->payload;
        if (pm->shape->flags & AWS_SF_EVENTSTREAM) {
            if (!eventstream_into(m, op, pm, resp, res, err))
                goto fail;
            *out = res;
            return true;
        }
        if (pm->shape->type == AWS_SHAPE_BLOB || pm->shape->type == AWS_SHAPE_STRING) {
            if (!set_new(res, pm->name, json_stringn_nocheck(body, resp->body_len), err)) {
                aws_error_oom(err);
                goto fail;
            }
            *out = res;
            return true;
        }
        if (!blank(body, resp->body_len)) {
            xnode *root = xml_parse(body, resp->body_len, err);
            if (!root)
                goto fail;
            if (is_error_document(root)) {
                xml_free(root);
                json_decref(res);
                return xml_error(m, op, resp, out, meta, err);
            }
            bool ok = set_new(res, pm->name, xml_parse_value(pm, root, 1, err), err);
            xml_free(root);
            if (!ok)
                goto fail;
        }
        *out = res;
        return true;
    }
    if (blank(body, resp->body_len)) {
        *out = res;
        return true;
    }
    xnode *root = xml_parse(body, resp->body_len, err);
    if (!root)
        goto fail;
    if (rest && is_error_document(root)) {
        xml_free(root);
        json_decref(res);
        return xml_error(m, op, resp, out, meta, err);
    }
    const xnode *start = root;
    if (!rest && op->output->result_wrapper)
        start = xml_child(root, op->output->result_wrapper);
    bool ok = true;
    if (start) {
        if ((s->flags & AWS_SF_UNION) && !rest) {
            aws_error local;
            aws_error_clear(&local);
            json_t *u = unknown_union(s, start, &local);
            if (u) {
                ok = json_object_update(res, u) == 0 || aws_error_oom(err);
                json_decref(u);
                start = NULL;
            } else if (local.code != AWS_ERR_NONE) {
                if (err)
                    *err = local;
                ok = false;
                start = NULL;
            }
        }
        if (start)
            ok = xml_parse_struct_into(s, start, res, 0, err);
    }
    if (ok && !meta->request_id[0]) {
        const xnode *rn = xml_child(xml_child(root, "ResponseMetadata"), "RequestId");
        if (!rn)
            rn = xml_child(root, "requestId");
        copy_text(rn, meta->request_id, sizeof meta->request_id);
    }
    xml_free(root);
    if (!ok)
        goto fail;
    *out = res;
    return true;
fail:
    json_decref(res);
    return false;
}
