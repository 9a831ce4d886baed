/*
 * config: the AWS shared config / credentials file parser.  See config.h for
 * the accepted syntax; the reference is Python's configparser
 * (RawConfigParser, strict, empty_lines_in_values) plus botocore's
 * configloader (_parse_nested, build_profile_map).
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * Characters
 * ---------------------------------------------------------------------- */

/* Length of the whitespace character (str.isspace() in Python) at p, or 0.
 * end bounds the read. */
static size_t s_space_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f))
        return 1;
    if (c < 0x80)
        return 0;
    size_t n = (size_t)(end - p);
    if (c == 0xc2 && n >= 2 && (p[1] == 0x85 || p[1] == 0xa0))
        return 2; /* U+0085, U+00A0 */
    if (n >= 3) {
        if (c == 0xe1 && p[1] == 0x9a && p[2] == 0x80)
            return 3; /* U+1680 */
        if (c == 0xe2 && p[1] == 0x80 && (p[2] <= 0x8a || p[2] == 0xa8 || p[2] == 0xa9 ||
                                          p[2] == 0xaf))
            return 3; /* U+2000..200A, U+2028, U+2029, U+202F */
        if (c == 0xe2 && p[1] == 0x81 && p[2] == 0x9f)
            return 3; /* U+205F */
        if (c == 0xe3 && p[1] == 0x80 && p[2] == 0x80)
            return 3; /* U+3000 */
    }
    return 0;
}

/* Trims whitespace at both ends of [*s, *s + *n). */
static void s_strip(const char **s, size_t *n)
{
    const unsigned char *p = (const unsigned char *)*s, *end = p + *n;
    size_t k;
    while (p < end && (k = s_space_len(p, end)) > 0)
        p += k;
    const unsigned char *last = p; /* end of the last non-space character */
    for (const unsigned char *q = p; q < end;) {
        k = s_space_len(q, end);
        if (k) {
            q += k;
        } else {
            q++;
            while (q < end && (*q & 0xc0) == 0x80)
                q++;
            last = q;
        }
    }
    *s = (const char *)p;
    *n = (size_t)(last - p);
}

static void s_rstrip(const char *s, size_t *n)
{
    const char *t = s;
    size_t m = *n;
    s_strip(&t, &m);
    *n = m ? (size_t)(t - s) + m : 0;
}

/* Offset of the first non-space character of the line (configparser's
 * indent level; a character counts 1 whatever its byte length). */
static size_t s_indent(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t k, cols = 0;
    while (p < end && (k = s_space_len(p, end)) > 0) {
        p += k;
        cols++;
    }
    return cols;
}

/* Well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF). */
static bool s_utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* ------------------------------------------------------------------------
 * A set of (id, string) pairs -> index, for duplicate detection in O(1).
 * ---------------------------------------------------------------------- */

typedef struct s_slot {
    uint64_t id;
    const char *s;
    size_t n;
    size_t value;
    bool used;
} s_slot;

typedef struct s_set {
    s_slot *slots;
    size_t cap; /* power of two */
    size_t count;
} s_set;

static uint64_t s_hash(uint64_t id, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ (id * 0x9e3779b97f4a7c15ULL);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static s_slot *s_set_slot(s_set *set, uint64_t id, const char *s, size_t n)
{
    size_t mask = set->cap - 1;
    size_t i = (size_t)s_hash(id, s, n) & mask;
    while (set->slots[i].used) {
        s_slot *sl = &set->slots[i];
        if (sl->id == id && sl->n == n && memcmp(sl->s, s, n) == 0)
            return sl;
        i = (i + 1) & mask;
    }
    return &set->slots[i];
}

static bool s_set_grow(s_set *set)
{
    size_t ncap = set->cap ? set->cap * 2 : 64;
    s_slot *old = set->slots;
    size_t ocap = set->cap;
    set->slots = aws_calloc(ncap, sizeof *set->slots);
    if (!set->slots) {
        set->slots = old;
        return false;
    }
    set->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].used)
            *s_set_slot(set, old[i].id, old[i].s, old[i].n) = old[i];
    aws_free(old);
    return true;
}

/* Looks (id, s) up; when absent inserts it with `value`.  *found receives
 * the existing value's slot or NULL.  False on no memory. */
static bool s_set_put(s_set *set, uint64_t id, const char *s, size_t n, size_t value,
                      s_slot **found)
{
    *found = NULL;
    if ((set->count + 1) * 2 > set->cap && !s_set_grow(set))
        return false;
    s_slot *sl = s_set_slot(set, id, s, n);
    if (sl->used) {
        *found = sl;
        return true;
    }
    *sl = (s_slot){.id = id, .s = s, .n = n, .value = value, .used = true};
    set->count++;
    return true;
}

static s_slot *s_set_get(const s_set *set, uint64_t id, const char *s, size_t n)
{
    if (!set->cap)
        return NULL;
    s_slot *sl = s_set_slot((s_set *)set, id, s, n);
    return sl->used ? sl : NULL;
}

/* ------------------------------------------------------------------------
 * Parse state: sections and entries whose values are lists of line slices
 * of the input, turned into strings at the end.
 * ---------------------------------------------------------------------- */

typedef struct s_vline {
    const char *s; /* stripped text (points into the input) */
    size_t n;
    size_t line;
} s_vline;

typedef struct s_pentry {
    char *key; /* lower-cased, owned */
    size_t line;
    s_vline *lines;
    size_t nlines, caplines;
} s_pentry;

typedef struct s_psection {
    const char *header; /* points into the input */
    size_t hlen;
    size_t line;
    s_pentry *entries;
    size_t count, cap;
} s_psection;

typedef struct s_parser {
    const char *filename;
    aws_error *err;
    s_psection *sections; /* sections[0] is [DEFAULT] */
    size_t count, cap;
    s_set keys;  /* (section index + 1, key) -> entry index; (0, header) -> section index */
} s_parser;

static bool s_fail(s_parser *p, size_t line, const char *what)
{
    return aws_error_set(p->err, AWS_ERR_PARSE, "%s:%zu: %s", p->filename, line, what);
}

static void s_parser_free(s_parser *p)
{
    for (size_t i = 0; i < p->count; i++) {
        s_psection *sec = &p->sections[i];
        for (size_t k = 0; k < sec->count; k++) {
            aws_free(sec->entries[k].key);
            aws_free(sec->entries[k].lines);
        }
        aws_free(sec->entries);
    }
    aws_free(p->sections);
    aws_free(p->keys.slots);
    memset(p, 0, sizeof *p);
}

static bool s_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return false;
        ncap *= 2;
    }
    void *n = aws_realloc(*arr, ncap * elem);
    if (!n)
        return false;
    *arr = n;
    *cap = ncap;
    return true;
}

static bool s_add_vline(s_parser *p, s_pentry *e, const char *s, size_t n, size_t line)
{
    if (!s_grow((void **)&e->lines, &e->caplines, e->nlines + 1, sizeof *e->lines))
        return aws_error_oom(p->err);
    e->lines[e->nlines++] = (s_vline){s, n, line};
    return true;
}

/* Opens section `header` (index 0 = [DEFAULT]).  *cur receives its index. */
static bool s_open_section(s_parser *p, const char *h, size_t hlen, size_t line, size_t *cur)
{
    if (hlen == 7 && memcmp(h, "DEFAULT", 7) == 0) {
        *cur = 0;
        return true;
    }
    s_slot *dup;
    if (!s_set_put(&p->keys, 0, h, hlen, p->count, &dup))
        return aws_error_oom(p->err);
    if (dup) {
        char msg[96];
        snprintf(msg, sizeof msg, "section declared twice (first at line %zu)",
                 p->sections[dup->value].line);
        return s_fail(p, line, msg);
    }
    if (!s_grow((void **)&p->sections, &p->cap, p->count + 1, sizeof *p->sections))
        return aws_error_oom(p->err);
    p->sections[p->count] = (s_psection){.header = h, .hlen = hlen, .line = line};
    *cur = p->count++;
    return true;
}

static bool s_add_entry(s_parser *p, size_t cur, const char *k, size_t klen, const char *v,
                        size_t vlen, size_t line)
{
    s_psection *sec = &p->sections[cur];
    char *key = aws_strndup(k, klen);
    if (!key)
        return aws_error_oom(p->err);
    for (size_t i = 0; i < klen; i++)
        if (key[i] >= 'A' && key[i] <= 'Z')
            key[i] = (char)(key[i] - 'A' + 'a');
    s_slot *dup;
    if (!s_set_put(&p->keys, cur + 1, key, klen, sec->count, &dup)) {
        aws_free(key);
        return aws_error_oom(p->err);
    }
    if (dup) {
        char msg[96];
        snprintf(msg, sizeof msg, "duplicate key (first at line %zu)",
                 sec->entries[dup->value].line);
        aws_free(key);
        return s_fail(p, line, msg);
    }
    if (!s_grow((void **)&sec->entries, &sec->cap, sec->count + 1, sizeof *sec->entries)) {
        /* the set points at key: remove it by clearing the slot */
        s_slot *sl = s_set_get(&p->keys, cur + 1, key, klen);
        if (sl)
            sl->used = false; /* safe: nothing is looked up after a failure */
        aws_free(key);
        return aws_error_oom(p->err);
    }
    s_pentry *e = &sec->entries[sec->count++];
    *e = (s_pentry){.key = key, .line = line};
    return s_add_vline(p, e, v, vlen, line);
}

/* The configparser line loop. */
static bool s_read(s_parser *p, const char *buf, size_t len)
{
    /* [DEFAULT] is sections[0]. */
    if (!s_grow((void **)&p->sections, &p->cap, 1, sizeof *p->sections))
        return aws_error_oom(p->err);
    p->sections[0] = (s_psection){.header = "DEFAULT", .hlen = 7};
    p->count = 1;

    size_t pos = 0, lineno = 0;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        pos = 3;
    bool have_section = false;
    size_t cur = 0;
    s_pentry *opt = NULL; /* the value being built */
    size_t indent_level = 0;
    while (pos < len) {
        lineno++;
        size_t start = pos;
        while (pos < len && buf[pos] != '\n' && buf[pos] != '\r')
            pos++;
        size_t n = pos - start;
        if (pos < len) {
            if (buf[pos] == '\r' && pos + 1 < len && buf[pos + 1] == '\n')
                pos++;
            pos++;
        }
        const char *line = buf + start;
        if (memchr(line, '\0', n))
            return s_fail(p, lineno, "NUL byte in line");
        if (!s_utf8_ok((const unsigned char *)line, n))
            return s_fail(p, lineno, "invalid UTF-8");

        const char *v = line;
        size_t vn = n;
        s_strip(&v, &vn);
        bool comment = vn > 0 && (v[0] == '#' || v[0] == ';');
        if (comment || vn == 0) {
            /* empty_lines_in_values: a blank line is part of the value */
            if (!comment && opt && !s_add_vline(p, opt, v, 0, lineno))
                return false;
            continue;
        }
        size_t indent = s_indent(line, n);
        if (have_section && opt && indent > indent_level) {
            if (!s_add_vline(p, opt, v, vn, lineno))
                return false;
            continue;
        }
        indent_level = indent;
        /* section header: \[(.+)\] anchored at the start, greedy */
        if (v[0] == '[') {
            const char *close = NULL;
            for (size_t i = vn; i > 1; i--)
                if (v[i - 1] == ']') {
                    close = v + i - 1;
                    break;
                }
            if (close && close > v + 1) {
                if (!s_open_section(p, v + 1, (size_t)(close - v - 1), lineno, &cur))
                    return false;
                have_section = true;
                opt = NULL;
                continue;
            }
        }
        if (!have_section)
            return s_fail(p, lineno, "key before the first [section] header");
        size_t d = 0;
        while (d < vn && v[d] != '=' && v[d] != ':')
            d++;
        if (d == vn)
            return s_fail(p, lineno, "expected 'key = value' or a [section] header");
        size_t klen = d;
        s_rstrip(v, &klen);
        if (klen == 0)
            return s_fail(p, lineno, "missing key before the delimiter");
        const char *val = v + d + 1;
        size_t vallen = vn - d - 1;
        s_strip(&val, &vallen);
        if (!s_add_entry(p, cur, v, klen, val, vallen, lineno))
            return false;
        s_psection *sec = &p->sections[cur];
        opt = &sec->entries[sec->count - 1];
    }
    return true;
}

/* ------------------------------------------------------------------------
 * Building the result
 * ---------------------------------------------------------------------- */

static void s_entry_clean(aws_config_entry *e)
{
    aws_free(e->key);
    aws_free(e->value);
    for (size_t i = 0; i < e->sub_count; i++) {
        aws_free(e->sub[i].key);
        aws_free(e->sub[i].value);
    }
    aws_free(e->sub);
    memset(e, 0, sizeof *e);
}

static void s_section_clean(aws_config_section *s)
{
    aws_free(s->header);
    aws_free(s->name);
    for (size_t i = 0; i < s->entry_count; i++)
        s_entry_clean(&s->entries[i]);
    aws_free(s->entries);
    memset(s, 0, sizeof *s);
}

void aws_config_file_init(aws_config_file *f)
{
    memset(f, 0, sizeof *f);
}

void aws_config_file_clean(aws_config_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->section_count; i++)
        s_section_clean(&f->sections[i]);
    aws_free(f->sections);
    memset(f, 0, sizeof *f);
}

/* botocore's _parse_nested over the continuation lines of pe (the first
 * line, the key line, is empty).  nested_id keys the duplicate set. */
static bool s_nested(s_parser *p, const s_pentry *pe, uint64_t nested_id, aws_config_entry *out)
{
    size_t cap = 0;
    for (size_t i = 1; i < pe->nlines; i++) {
        const s_vline *vl = &pe->lines[i];
        if (vl->n == 0)
            continue;
        const char *eq = memchr(vl->s, '=', vl->n);
        if (!eq)
            return s_fail(p, vl->line, "expected 'name = value' in a nested section");
        const char *k = vl->s, *v = eq + 1;
        size_t kn = (size_t)(eq - vl->s), vn = vl->n - kn - 1;
        s_strip(&k, &kn);
        s_strip(&v, &vn);
        s_slot *dup;
        if (!s_set_put(&p->keys, nested_id, k, kn, out->sub_count, &dup))
            return aws_error_oom(p->err);
        aws_config_entry *dst;
        if (dup) {
            dst = &out->sub[dup->value]; /* a dict: the later value wins */
            char *nv = aws_strndup(v, vn);
            if (!nv)
                return aws_error_oom(p->err);
            aws_free(dst->value);
            dst->value = nv;
            dst->line = vl->line;
            continue;
        }
        if (!s_grow((void **)&out->sub, &cap, out->sub_count + 1, sizeof *out->sub))
            return aws_error_oom(p->err);
        dst = &out->sub[out->sub_count];
        memset(dst, 0, sizeof *dst);
        dst->key = aws_strndup(k, kn);
        dst->value = aws_strndup(v, vn);
        dst->line = vl->line;
        out->sub_count++;
        if (!dst->key || !dst->value)
            return aws_error_oom(p->err);
    }
    return true;
}

/* Converts a parse entry (joining its lines). */
static bool s_build_entry(s_parser *p, const s_pentry *pe, uint64_t nested_id,
                          aws_config_entry *out)
{
    memset(out, 0, sizeof *out);
    out->line = pe->line;
    out->key = aws_strdup(pe->key);
    if (!out->key)
        return aws_error_oom(p->err);
    /* drop trailing blank lines (the join is rstripped) */
    size_t nl = pe->nlines;
    while (nl > 1 && pe->lines[nl - 1].n == 0)
        nl--;
    size_t total = 0;
    for (size_t i = 0; i < nl; i++)
        total += pe->lines[i].n + 1;
    char *v = aws_malloc(total + 1);
    if (!v)
        return aws_error_oom(p->err);
    size_t at = 0;
    for (size_t i = 0; i < nl; i++) {
        if (i)
            v[at++] = '\n';
        memcpy(v + at, pe->lines[i].s, pe->lines[i].n);
        at += pe->lines[i].n;
    }
    v[at] = '\0';
    out->value = v;
    if (nl > 1 && pe->lines[0].n == 0) {
        out->nested = true;
        return s_nested(p, pe, nested_id, out);
    }
    return true;
}

/* Deep copy of a built entry ([DEFAULT] keys into a section). */
static bool s_copy_entry(const aws_config_entry *src, aws_config_entry *dst, aws_error *err)
{
    memset(dst, 0, sizeof *dst);
    dst->line = src->line;
    dst->nested = src->nested;
    dst->key = aws_strdup(src->key);
    dst->value = aws_strdup(src->value);
    if (!dst->key || !dst->value)
        return aws_error_oom(err);
    if (src->sub_count) {
        dst->sub = aws_calloc(src->sub_count, sizeof *dst->sub);
        if (!dst->sub)
            return aws_error_oom(err);
        for (size_t i = 0; i < src->sub_count; i++) {
            dst->sub[i].line = src->sub[i].line;
            dst->sub[i].key = aws_strdup(src->sub[i].key);
            dst->sub[i].value = aws_strdup(src->sub[i].value);
            dst->sub_count = i + 1;
            if (!dst->sub[i].key || !dst->sub[i].value)
                return aws_error_oom(err);
        }
    }
    return true;
}

static bool s_build(s_parser *p, aws_config_file *f)
{
    uint64_t nested_id = (uint64_t)p->count + 1;
    /* [DEFAULT] entries first, as they are copied into every section */
    aws_config_section defaults = {0};
    bool ok = true;
    const s_psection *dsec = &p->sections[0];
    if (dsec->count) {
        defaults.entries = aws_calloc(dsec->count, sizeof *defaults.entries);
        if (!defaults.entries)
            return aws_error_oom(p->err);
        for (size_t k = 0; k < dsec->count && ok; k++) {
            ok = s_build_entry(p, &dsec->entries[k], nested_id++, &defaults.entries[k]);
            defaults.entry_count = k + 1;
        }
    }
    if (ok && p->count > 1) {
        f->sections = aws_calloc(p->count - 1, sizeof *f->sections);
        if (!f->sections)
            ok = aws_error_oom(p->err);
    }
    for (size_t i = 1; ok && i < p->count; i++) {
        const s_psection *ps = &p->sections[i];
        aws_config_section *s = &f->sections[i - 1];
        f->section_count = i;
        s->line = ps->line;
        s->header = aws_strndup(ps->header, ps->hlen);
        if (!s->header) {
            ok = aws_error_oom(p->err);
            break;
        }
        if (!aws_config_classify(s->header, &s->kind, &s->name, p->err)) {
            ok = false;
            break;
        }
        size_t extra = 0;
        for (size_t k = 0; k < defaults.entry_count; k++) {
            const char *dk = defaults.entries[k].key;
            if (!s_set_get(&p->keys, i + 1, dk, strlen(dk)))
                extra++;
        }
        if (ps->count + extra) {
            s->entries = aws_calloc(ps->count + extra, sizeof *s->entries);
            if (!s->entries) {
                ok = aws_error_oom(p->err);
                break;
            }
        }
        for (size_t k = 0; ok && k < ps->count; k++) {
            ok = s_build_entry(p, &ps->entries[k], nested_id++, &s->entries[k]);
            s->entry_count = k + 1;
        }
        for (size_t k = 0; ok && k < defaults.entry_count; k++) {
            const char *dk = defaults.entries[k].key;
            if (s_set_get(&p->keys, i + 1, dk, strlen(dk)))
                continue;
            ok = s_copy_entry(&defaults.entries[k], &s->entries[s->entry_count], p->err);
            s->entry_count++;
        }
    }
    s_section_clean(&defaults);
    return ok;
}

bool aws_config_parse(const char *buf, size_t len, const char *filename, aws_config_file *f,
                      aws_error *err)
{
    aws_config_file_clean(f);
    if (!buf && len)
        return aws_error_set(err, AWS_ERR_INVALID_ARG, "aws_config_parse: NULL buffer");
    s_parser p = {.filename = filename ? filename : "<config>", .err = err};
    bool ok = s_read(&p, buf ? buf : "", len) && s_build(&p, f);
    s_parser_free(&p);
    if (!ok)
        aws_config_file_clean(f);
    return ok;
}

/* ------------------------------------------------------------------------
 * shlex.split and header classification
 * ---------------------------------------------------------------------- */

bool aws_config_shlex(const char *s, char **words, size_t max, size_t *count, aws_error *err)
{
    *count = 0;
    size_t n = strlen(s);
    char *tok = aws_malloc(n + 1);
    if (!tok)
        return aws_error_oom(err);
    size_t stored = 0, total = 0, i = 0;
    bool ok = true;
    while (ok) {
        while (i < n && strchr(" \t\r\n", s[i]))
            i++;
        if (i >= n)
            break;
        size_t t = 0;
        while (i < n && !strchr(" \t\r\n", s[i])) {
            char c = s[i];
            if (c == '\\') {
                if (i + 1 >= n) {
                    ok = aws_error_set(err, AWS_ERR_PARSE, "no escaped character");
                    break;
                }
                tok[t++] = s[i + 1];
                i += 2;
            } else if (c == '\'') {
                const char *q = strchr(s + i + 1, '\'');
                if (!q) {
                    ok = aws_error_set(err, AWS_ERR_PARSE, "no closing quotation");
                    break;
                }
                size_t m = (size_t)(q - (s + i + 1));
                memcpy(tok + t, s + i + 1, m);
                t += m;
                i += m + 2;
            } else if (c == '"') {
                i++;
                for (;;) {
                    if (i >= n) {
                        ok = aws_error_set(err, AWS_ERR_PARSE, "no closing quotation");
                        break;
                    }
                    if (s[i] == '"') {
                        i++;
                        break;
                    }
                    if (s[i] == '\\' && i + 1 < n && (s[i + 1] == '"' || s[i + 1] == '\\')) {
                        tok[t++] = s[i + 1];
                        i += 2;
                    } else {
                        tok[t++] = s[i++];
                    }
                }
            } else {
                tok[t++] = c;
                i++;
            }
        }
        if (!ok)
            break;
        if (stored < max) {
            words[stored] = aws_strndup(tok, t);
            if (!words[stored]) {
                ok = aws_error_oom(err);
                break;
            }
            stored++;
        }
        total++;
    }
    aws_free(tok);
    if (!ok) {
        for (size_t k = 0; k < stored; k++) {
            aws_free(words[k]);
            words[k] = NULL;
        }
        return false;
    }
    *count = total;
    return true;
}

static bool s_starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool aws_config_classify(const char *header, aws_config_kind *kind, char **name, aws_error *err)
{
    *kind = AWS_CONFIG_OTHER;
    *name = NULL;
    aws_config_kind k;
    if (s_starts(header, "profile"))
        k = AWS_CONFIG_PROFILE;
    else if (s_starts(header, "sso-session"))
        k = AWS_CONFIG_SSO_SESSION;
    else if (strcmp(header, "default") == 0) {
        *kind = AWS_CONFIG_PROFILE;
        *name = aws_strdup("default");
        return *name ? true : aws_error_oom(err);
    } else if (s_starts(header, "services"))
        k = AWS_CONFIG_SERVICES;
    else
        return true;
    char *words[2] = {NULL, NULL};
    size_t count = 0;
    aws_error e;
    aws_error_clear(&e);
    if (!aws_config_shlex(header, words, 2, &count, &e)) {
        if (e.code == AWS_ERR_NO_MEMORY)
            return aws_error_oom(err);
        *kind = AWS_CONFIG_IGNORED; /* botocore skips headers shlex rejects */
        return true;
    }
    aws_free(words[0]);
    if (count != 2) {
        aws_free(words[1]);
        *kind = AWS_CONFIG_IGNORED;
        return true;
    }
    *kind = k;
    *name = words[1];
    return true;
}

const aws_config_entry *aws_config_find(const aws_config_entry *entries, size_t count,
                                        const char *key)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(entries[i].key, key) == 0)
            return &entries[i];
    return NULL;
}
