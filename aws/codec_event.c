/* codec_event: AWS event streams (application/vnd.amazon.eventstream).
 *
 * A message: total length (4 bytes, big-endian), headers length (4),
 * prelude CRC32 (4), headers, payload, message CRC32 (4).  A header: name
 * length (1), name, type (1), value: 0 true, 1 false, 2 byte, 3 int16,
 * 4 int32, 5 int64, 6 bytes (2-byte length), 7 string (2-byte length),
 * 8 timestamp (int64 milliseconds), 9 UUID (16 bytes).
 *
 * Messages are read by the output's event-stream shape: ":event-type" names
 * the member (event shape) of the stream; its "eventheader" members come
 * from headers, its "eventpayload" member from the payload (blob/string
 * raw, structures parsed as JSON or XML per protocol), or else the payload
 * is the event structure itself.  "initial-response" (json protocol) holds
 * the output's other members.  "exception"/"error" messages are service
 * errors.
 */
#include "codec_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#define EV_MAX_MESSAGE (16u << 20) /* the format's own limit */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Decoded headers as a JSON object (name -> value). */
static json_t *ev_headers(const unsigned char *p, size_t n, aws_error *err)
{
    json_t *h = json_object();
    if (!h)
        return aws_error_oom(err), NULL;
    size_t i = 0;
    while (i < n) {
        size_t nl = p[i++];
        if (nl == 0 || i + nl + 1 > n)
            goto bad;
        char name[256];
        memcpy(name, p + i, nl);
        name[nl] = '\0';
        i += nl;
        int type = p[i++];
        json_t *v = NULL;
        size_t need = 0;
        switch (type) {
        case 0: v = json_true(); break;
        case 1: v = json_false(); break;
        case 2: need = 1; break;
        case 3: need = 2; break;
        case 4: need = 4; break;
        case 5: case 8: need = 8; break;
        case 6: case 7: need = 2; break;
        case 9: need = 16; break;
        default: goto bad;
        }
        if (i + need > n)
            goto bad;
        switch (type) {
        case 2: v = json_integer((int8_t)p[i]); break;
        case 3: v = json_integer((int16_t)(p[i] << 8 | p[i + 1])); break;
        case 4: v = json_integer((int32_t)be32(p + i)); break;
        case 5: v = json_integer((json_int_t)(int64_t)be64(p + i)); break;
        case 8: v = timestamp_value((double)(int64_t)be64(p + i) / 1000.0); break;
        case 6:
        case 7: {
            size_t len = (size_t)(p[i] << 8 | p[i + 1]);
            if (i + 2 + len > n)
                goto bad;
            v = json_stringn_nocheck((const char *)p + i + 2, len);
            need = 2 + len;
            break;
        }
        case 9: {
            char hex[33];
            for (int k = 0; k < 16; k++)
                snprintf(hex + 2 * k, 3, "%02x", p[i + k]);
            v = json_string(hex);
            break;
        }
        default:
            break;
        }
        i += need;
        if (!v || json_object_set_new(h, name, v) != 0) {
            json_decref(h);
            return aws_error_oom(err), NULL;
        }
    }
    return h;
bad:
    json_decref(h);
    return aws_error_set(err, AWS_ERR_PARSE, "event stream: malformed message headers"), NULL;
}

/* Parses a payload as member mb (structures etc.) in the protocol's format. */
static json_t *ev_payload_value(const aws_model *m, const aws_member *mb, const char *p,
                                size_t n, aws_error *err)
{
    if (m->protocol == AWS_PROTOCOL_REST_XML) {
        xnode *root = xml_parse(p, n, err);
        if (!root)
            return NULL;
        json_t *v = xml_parse_value(mb, root, 1, err);
        xml_free(root);
        return v;
    }
    json_t *doc = json_decode_body(p, n, err);
    if (!doc)
        return NULL;
    json_t *v = json_parse_value(mb, doc, 1, err);
    json_decref(doc);
    return v;
}

/* The members of structure s from a payload, into obj. */
static bool ev_payload_struct(const aws_model *m, const aws_shape *s, const char *p, size_t n,
                              json_t *obj, aws_error *err)
{
    size_t k = 0;
    while (k < n && (p[k] == ' ' || p[k] == '\n' || p[k] == '\r' || p[k] == '\t'))
        k++;
    if (k == n)
        return true;
    if (m->protocol == AWS_PROTOCOL_REST_XML) {
        xnode *root = xml_parse(p, n, err);
        if (!root)
            return false;
        bool ok = xml_parse_struct_into(s, root, obj, 1, err);
        xml_free(root);
        return ok;
    }
    json_t *doc = json_decode_body(p, n, err);
    if (!doc)
        return false;
    bool ok = json_parse_struct_body(s, doc, obj, err) != NULL;
    json_decref(doc);
    return ok;
}

static json_t *ev_event(const aws_model *m, const aws_shape *es, const json_t *headers,
                        const char *p, size_t n, aws_error *err)
{
    json_t *obj = json_object();
    if (!obj)
        return aws_error_oom(err), NULL;
    bool has_payload_member = false;
    for (size_t i = 0; i < es->member_count; i++) {
        const aws_member *mb = &es->members[i];
        json_t *v = NULL;
        if (mb->flags & AWS_MF_EVENTHEADER) {
            const json_t *h = json_object_get(headers, mb->name);
            if (!h)
                continue;
            v = json_deep_copy(h);
        } else if (mb->flags & AWS_MF_EVENTPAYLOAD) {
            has_payload_member = true;
            if (mb->shape->type == AWS_SHAPE_BLOB || mb->shape->type == AWS_SHAPE_STRING)
                v = json_stringn_nocheck(p, n);
            else if (!(v = ev_payload_value(m, mb, p, n, err))) {
                json_decref(obj);
                return NULL;
            }
        } else {
            continue;
        }
        if (!v || json_object_set_new(obj, mb->name, v) != 0) {
            json_decref(obj);
            return aws_error_oom(err), NULL;
        }
    }
    if (!has_payload_member && !ev_payload_struct(m, es, p, n, obj, err)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

int aws_eventstream_next(const aws_model *m, const aws_shape *stream, const aws_shape *output,
                         const char *buf, size_t n, size_t *consumed, json_t **event,
                         aws_error *err)
{
    const unsigned char *u = (const unsigned char *)buf;
    *event = NULL;
    *consumed = 0;
    if (n < 12)
        return 0;
    uint32_t total = be32(u), hlen = be32(u + 4);
    if (crc32(0, u, 8) != be32(u + 8))
        return aws_error_set(err, AWS_ERR_PARSE, "event stream: prelude checksum mismatch"), -1;
    if (total < 16 || total > EV_MAX_MESSAGE || hlen > total - 16)
        return aws_error_set(err, AWS_ERR_PARSE, "event stream: bad message length"), -1;
    if (n < total)
        return 0;
    if (crc32(0, u, total - 4) != be32(u + total - 4))
        return aws_error_set(err, AWS_ERR_PARSE, "event stream: message checksum mismatch"), -1;
    json_t *headers = ev_headers(u + 12, hlen, err);
    if (!headers)
        return -1;
    const char *payload = buf + 12 + hlen;
    size_t plen = total - 16 - hlen;
    const char *mtype = json_string_value(json_object_get(headers, ":message-type"));
    const char *etype = json_string_value(json_object_get(headers, ":event-type"));
    int rc = 1;
    *consumed = total;
    if (mtype && (!strcmp(mtype, "exception") || !strcmp(mtype, "error"))) {
        bool exc = !strcmp(mtype, "exception");
        const char *code = json_string_value(
            json_object_get(headers, exc ? ":exception-type" : ":error-code"));
        char msg[AWS_ERROR_MESSAGE_MAX] = "";
        const char *hm = json_string_value(json_object_get(headers, ":error-message"));
        if (hm) {
            snprintf(msg, sizeof msg, "%s", hm);
        } else if (exc) {
            aws_error local;
            json_t *doc = m->protocol == AWS_PROTOCOL_REST_XML
                              ? NULL
                              : json_decode_body(payload, plen, &local);
            const char *jm = json_string_value(json_object_get(doc, "message"));
            if (!jm)
                jm = json_string_value(json_object_get(doc, "Message"));
            snprintf(msg, sizeof msg, "%s", jm ? jm : "");
            json_decref(doc);
        }
        aws_error_set_service(err, 200, code ? code : "", msg, NULL, false);
        rc = -1;
    } else if (etype && !strcmp(etype, "initial-response")) {
        json_t *obj = json_object();
        if (!obj || (output && !ev_payload_struct(m, output, payload, plen, obj, err))) {
            if (!obj)
                aws_error_oom(err);
            json_decref(obj);
            rc = -1;
        } else {
            *event = json_pack("{s:o}", "initial-response", obj);
            if (!*event)
                {
                aws_error_oom(err);
                rc = -1;
            }
        }
    } else {
        const aws_member *em = etype ? aws_shape_member(stream, etype) : NULL;
        if (!em) {
            *event = json_object(); /* unknown event: nothing the model can say */
            if (!*event)
                {
                aws_error_oom(err);
                rc = -1;
            }
        } else {
            json_t *v = ev_event(m, em->shape, headers, payload, plen, err);
            if (!v)
                rc = -1;
            else if (!(*event = json_pack("{s:o}", etype, v)))
                {
                aws_error_oom(err);
                rc = -1;
            }
        }
    }
    json_decref(headers);
    if (rc < 0)
        *consumed = 0;
    return rc;
}

const aws_member *aws_eventstream_member(const aws_operation *op)
{
    if (!op || !op->output)
        return NULL;
    if (op->output->payload && (op->output->payload->shape->flags & AWS_SF_EVENTSTREAM))
        return op->output->payload;
    const aws_shape *s = op->output->shape;
    for (size_t i = 0; i < s->member_count; i++)
        if (s->members[i].shape->flags & AWS_SF_EVENTSTREAM)
            return &s->members[i];
    return NULL;
}

bool eventstream_into(const aws_model *m, const aws_operation *op, const aws_member *sm,
                      const aws_http_response *resp, json_t *out, aws_error *err)
{
    json_t *list = json_array();
    if (!list)
        return aws_error_oom(err);
    if (!eventstream_parse_all(m, sm->shape, op->output->shape, resp->body ? resp->body : "",
                               resp->body_len, list, out, err)) {
        json_decref(list);
        return false;
    }
    if (json_object_set_new(out, sm->name, list) != 0)
        return aws_error_oom(err);
    return true;
}

bool eventstream_parse_all(const aws_model *m, const aws_shape *stream, const aws_shape *output,
                           const char *body, size_t n, json_t *list, json_t *out, aws_error *err)
{
    size_t off = 0;
    while (off < n) {
        size_t used;
        json_t *ev;
        int rc = aws_eventstream_next(m, stream, output, body + off, n - off, &used, &ev, err);
        if (rc < 0)
            return false;
        if (rc == 0)
            return aws_error_set(err, AWS_ERR_PARSE, "event stream: truncated message");
        off += used;
        json_t *init = json_object_get(ev, "initial-response");
        if (init) {
            int rc2 = json_object_update(out, init);
            json_decref(ev);
            if (rc2 != 0)
                return aws_error_oom(err);
        } else if (json_object_size(ev) == 0) {
            json_decref(ev);
        } else if (json_array_append_new(list, ev) != 0) {
            return aws_error_oom(err);
        }
    }
    return true;
}
