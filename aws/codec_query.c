/* codec_query: the query and ec2 protocols' request serializer.
 *
 * Body: Action=<op>&Version=<apiVersion>, then every parameter as
 * <key>=<value> (percent-encoded, RFC 3986 unreserved characters kept) in
 * the order of the model's members.  Keys are dotted paths:
 *
 *   query  structure member   Prefix.Name            (Name = locationName or member name)
 *          list               Prefix.member.N         (member locationName, or "member")
 *          flattened list     Prefix.N, or with a member locationName the last
 *                             component replaced: Parent.ItemName.N
 *          empty list         Prefix=                 (an explicit empty value)
 *          map                Prefix.entry.N.key / .value  (flattened: Prefix.N.key)
 *   ec2    names are queryName, else locationName or the member name with
 *          the first letter upper-cased; lists are always Prefix.N and empty
 *          lists are omitted.
 */
#include "codec_internal.h"

#include <ctype.h>
#include <string.h>

typedef struct qstate {
    ser_ctx *c;
    bool ec2;
    cbuf body;
    cbuf key; /* the current dotted key */
} qstate;

/* Serialized name of a member (mb may be a list member / map key ref). */
static bool q_name(qstate *q, const aws_member *mb, const char *dflt, cbuf *out)
{
    if (q->ec2) {
        if (mb->query_name)
            return cb_puts(out, mb->query_name);
        if (mb->location_name) {
            char first = (char)toupper((unsigned char)mb->location_name[0]);
            return cb_putc(out, first) && cb_puts(out, mb->location_name + 1);
        }
        /* Smithy's ec2 rule: the member name, capitalized */
        if (dflt[0])
            return cb_putc(out, (char)toupper((unsigned char)dflt[0])) && cb_puts(out, dflt + 1);
        return true;
    }
    return cb_puts(out, mb->location_name ? mb->location_name : dflt);
}

static bool q_emit(qstate *q, const char *val, size_t n)
{
    cbuf *b = &q->body;
    cb_putc(b, '&');
    cb_pct(b, q->key.data ? q->key.data : "", q->key.len, NULL);
    cb_putc(b, '=');
    cb_pct(b, val, n, NULL);
    return !b->oom || ser_oom(q->c);
}

static bool q_value(qstate *q, const aws_member *mb, const json_t *v);

/* Appends "." (when not at the top) + name to the key; returns the old length. */
static size_t key_push(qstate *q, const aws_member *mb, const char *dflt)
{
    size_t old = q->key.len;
    if (old)
        cb_putc(&q->key, '.');
    q_name(q, mb, dflt, &q->key);
    return old;
}

static size_t key_push_index(qstate *q, size_t i)
{
    size_t old = q->key.len;
    if (old)
        cb_putc(&q->key, '.');
    cb_printf(&q->key, "%zu", i);
    return old;
}

static void key_pop(qstate *q, size_t old)
{
    q->key.len = old;
    if (q->key.data)
        q->key.data[old] = '\0';
}

/* Every key of obj must be a member of s. */
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

static bool q_structure(qstate *q, const aws_shape *s, const json_t *v)
{
    ser_ctx *c = q->c;
    if (!ser_expect(c, v, JSON_OBJECT, "object") || !check_members(c, s, v))
        return false;
    for (size_t i = 0; i < s->member_count; i++) {
        const aws_member *mb = &s->members[i];
        const json_t *mv = json_object_get(v, mb->name);
        if (!mv || json_is_null(mv))
            continue;
        size_t op = path_push(c, mb->name);
        size_t ok = key_push(q, mb, mb->name);
        bool r = q_value(q, mb, mv);
        key_pop(q, ok);
        path_pop(c, op);
        if (!r)
            return false;
    }
    return true;
}

static bool q_list(qstate *q, const aws_member *mb, const json_t *v)
{
    ser_ctx *c = q->c;
    const aws_shape *s = mb->shape;
    if (!ser_expect(c, v, JSON_ARRAY, "array"))
        return false;
    if (json_array_size(v) == 0)
        return q->ec2 ? true : q_emit(q, "", 0);
    /* The caller pushed this list's own key component and pops back to
     * before it afterwards, so replacing that component here is safe. */
    if (q->ec2) {
        /* Prefix.N */
    } else if (mb->flags & AWS_MF_FLATTENED) {
        if (s->member.location_name) {
            char *dot = q->key.data ? strrchr(q->key.data, '.') : NULL;
            key_pop(q, dot ? (size_t)(dot - q->key.data) : 0);
            key_push(q, &s->member, "");
        }
    } else {
        key_push(q, &s->member, "member");
    }
    size_t idx;
    json_t *item;
    json_array_foreach(v, idx, item)
    {
        size_t op = path_push_index(c, idx);
        size_t ok = key_push_index(q, idx + 1);
        bool r = json_is_null(item) ? true : q_value(q, &s->member, item);
        key_pop(q, ok);
        path_pop(c, op);
        if (!r)
            return false;
    }
    return !q->key.oom || ser_oom(c);
}

static bool q_map(qstate *q, const aws_member *mb, const json_t *v)
{
    ser_ctx *c = q->c;
    const aws_shape *s = mb->shape;
    if (!ser_expect(c, v, JSON_OBJECT, "object"))
        return false;
    size_t base = q->key.len;
    if (!(mb->flags & AWS_MF_FLATTENED))
        cb_puts(&q->key, ".entry");
    size_t i = 0;
    const char *k;
    json_t *val;
    json_object_foreach((json_t *)v, k, val)
    {
        i++;
        if (json_is_null(val))
            continue;
        size_t op = path_push_key(c, k);
        size_t ok = key_push_index(q, i);
        size_t kk = key_push(q, &s->key, "key");
        json_t *kv = json_string(k);
        bool r = kv && q_value(q, &s->key, kv);
        json_decref(kv);
        if (!kv)
            ser_oom(c);
        key_pop(q, kk);
        if (r) {
            kk = key_push(q, &s->value, "value");
            r = q_value(q, &s->value, val);
            key_pop(q, kk);
        }
        key_pop(q, ok);
        path_pop(c, op);
        if (!r)
            return false;
    }
    key_pop(q, base);
    return true;
}

static bool q_value(qstate *q, const aws_member *mb, const json_t *v)
{
    ser_ctx *c = q->c;
    if (!ser_enter(c))
        return false;
    bool ok;
    switch (mb->shape->type) {
    case AWS_SHAPE_STRUCTURE:
        ok = q_structure(q, mb->shape, v);
        break;
    case AWS_SHAPE_LIST:
        ok = q_list(q, mb, v);
        break;
    case AWS_SHAPE_MAP:
        ok = q_map(q, mb, v);
        break;
    default: {
        cbuf val = {0};
        ok = ser_scalar_text(c, mb, v, "iso8601", &val);
        if (ok)
            ok = q_emit(q, val.data ? val.data : "", val.len);
        cb_free(&val);
        break;
    }
    }
    ser_leave(c);
    return ok && (!q->key.oom || ser_oom(c));
}

bool query_serialize(ser_ctx *c, const json_t *input, aws_http_request *out)
{
    qstate q = {.c = c, .ec2 = c->m->protocol == AWS_PROTOCOL_EC2};
    cb_puts(&q.body, "Action=");
    cb_pct(&q.body, c->op->name, strlen(c->op->name), NULL);
    cb_puts(&q.body, "&Version=");
    const char *ver = c->m->api_version ? c->m->api_version : "";
    cb_pct(&q.body, ver, strlen(ver), NULL);
    bool ok = !q.body.oom || ser_oom(c);
    if (ok && c->op->input && input)
        ok = q_structure(&q, c->op->input->shape, input);
    cb_free(&q.key);
    if (!ok) {
        cb_free(&q.body);
        return false;
    }
    out->body = cb_take(&q.body, &out->body_len);
    out->path = aws_strdup("/");
    out->query = aws_strdup("");
    if (!out->body || !out->path || !out->query ||
        !req_add_header(out, "Content-Type", "application/x-www-form-urlencoded; charset=utf-8"))
        return ser_oom(c);
    return true;
}
