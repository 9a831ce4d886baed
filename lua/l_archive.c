/*
 * lumu._archive: safe extraction of .zip and .tar(.gz) archives with
 * libarchive, for lumu.extensions (stdlib/lumu/extensions.lua), and zip
 * archives written, listed and read in memory, for lumu.zip
 * (stdlib/lumu/zip.lua, which documents the behaviour and checks names).
 *
 *   extract(data, dest [, limits]) -> info | nil, err
 *     data    the archive bytes (zip, or tar: ustar/pax/gnu, plain or gzip)
 *     dest    an existing directory (normally new and empty); entries are
 *             created below it and nowhere else
 *     limits  { max_entries = 10000, max_bytes = 64 MiB (all files),
 *               max_file_bytes = max_bytes (one file) }
 *     info    { entries = n, files = n, dirs = n, bytes = n,
 *               format = "ZIP 2.0 (deflation)" | "POSIX pax interchange format" | ...,
 *               links = { {path=, target=, hard=bool}, ... } }
 *   Rules (an entry breaking one fails the whole call):
 *     * names are normalised ("./a//b" -> "a/b"); absolute names, ".."
 *       components, backslashes, control characters, components over 255
 *       bytes, names over 1024 bytes or 64 levels are rejected;
 *     * directories are created 0755 and files 0644 (0755 when any x bit is
 *       set), with O_EXCL|O_NOFOLLOW below a directory descriptor: nothing
 *       is ever written through a symlink, and a file given twice fails;
 *     * symbolic and hard links are NOT created: a link whose target
 *       (resolved lexically from the link's directory) stays inside dest is
 *       listed in info.links with the target normalised relative to dest;
 *       one pointing outside (absolute, or too many "..") is an error;
 *     * devices, FIFOs and sockets are errors;
 *     * more than max_entries entries, or more bytes written than the
 *       limits (counted as they are decompressed, whatever the headers
 *       claim) is an error.
 *   err: "<entry name>: <why>" or "archive: <libarchive's message>".
 *   On failure the files written so far stay in dest: extract into a fresh
 *   directory and remove it on failure.  Raises on bad argument types.
 *
 *   zip(entries [, level]) -> bytes | nil, err
 *     entries {name = string (no NUL), data = string (nil for dir),
 *              dir = boolean, mode = 0..07777 (default 0644 / 0755),
 *              mtime = 0..2^31-1 (default 1980-01-01)}, written in order
 *              with libarchive's zip writer (hdrcharset UTF-8)
 *     level   -1..9 (default -1): 0 stores, others deflate at that level
 *   Raises on a bad argument ("bad argument #1 to 'zip' (entry 3: ...)")
 *   and on memory errors; err: "zip: [<name>: ]<libarchive's message>" or
 *   an output past 4 GiB.
 *
 *   list(bytes [, max_entries]) -> entries | nil, err
 *     {name=, index=, type = "file"|"directory"|"symlink"|"other", dir=,
 *      size=, mode=, mtime=, method = "store"|"deflate"|<libarchive word>}
 *     through the central directory (seekable reader); max_entries 65535.
 *   read(bytes, name | index [, max_bytes]) -> data | nil, err
 *     the first entry of that name (or the index-th one), a regular file,
 *     inflated to at most its declared size and max_bytes (256 MiB).
 *   err: "zip: <libarchive's message>", "zip: <name>: <why>".  An archive
 *   with no entries (a lone 22-byte end record) lists as {}.  Names are
 *   read and written as UTF-8: libarchive runs under a thread-local
 *   C.UTF-8 LC_CTYPE (uselocale) for these calls, restored by the box.
 *
 *   version() -> "libarchive 3.6.2 zlib/1.2.13 ..."
 *
 * The libarchive handles, the open descriptors and zip()'s output buffer
 * belong to a to-be-closed userdata created before them, so an error
 * raised by the Lua API (memory, bad arguments) never leaks them; the write
 * callback never raises (it records the failure and returns -1).  libarchive has no allocator hooks: its memory is not
 * seen by the tracking allocator.
 *
 * libarchive.so.13 is loaded when the module is opened (lazylib.h): require
 * raises "libarchive.so.13 not available: <reason>" without it.
 */
#include "host.h"
#include "lazylib.h"

#include <lauxlib.h>

#include <archive.h>
#include <archive_entry.h>

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXTRACT_MT "lumu.archive.Extract"
#define WRITER_MT "lumu.archive.Writer"

#define ARCH_MAX_NAME 1024 /* bytes in a normalised entry name */
#define ARCH_MAX_COMPONENT 255
#define ARCH_MAX_DEPTH 64
#define ARCH_BLOCK 32768

/* The resources of one extract() call. */
typedef struct arch_extract {
    struct archive *a; /* reader, or NULL */
    int root;          /* dest directory, or -1 */
    int fd;            /* file being written, or -1 */
    int dirfd;         /* its parent directory, or -1 */
    locale_t utf8;     /* this thread's C.UTF-8 LC_CTYPE while in use, or 0 */
    locale_t saved;    /* the locale it replaced */
} arch_extract;

/* Switches this thread to a C.UTF-8 LC_CTYPE, so that libarchive reads and
 * writes UTF-8 names whatever the process locale is (lumu runs in "C",
 * where it cannot convert them).  Best effort: without C.UTF-8 nothing
 * changes.  arch_utf8_end restores the locale; both are idempotent. */
static void arch_utf8_begin(locale_t *utf8, locale_t *saved)
{
    *utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    if (*utf8)
        *saved = uselocale(*utf8);
}

static void arch_utf8_end(locale_t *utf8, locale_t *saved)
{
    if (*utf8) {
        uselocale(*saved);
        freelocale(*utf8);
        *utf8 = (locale_t)0;
    }
}

typedef struct arch_limits {
    lua_Integer max_entries, max_bytes, max_file_bytes;
} arch_limits;

static void arch_release(arch_extract *x)
{
    if (x->fd >= 0) {
        close(x->fd);
        x->fd = -1;
    }
    if (x->dirfd >= 0) {
        close(x->dirfd);
        x->dirfd = -1;
    }
    if (x->root >= 0) {
        close(x->root);
        x->root = -1;
    }
    if (x->a) {
        archive_read_free(x->a);
        x->a = NULL;
    }
    arch_utf8_end(&x->utf8, &x->saved);
}

/* __gc and __close: idempotent. */
static int extract_gc(lua_State *L)
{
    arch_release(luaL_checkudata(L, 1, EXTRACT_MT));
    return 0;
}

/* ---------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------- */

/* Copies at most 200 bytes of an entry name for a message, with bytes that
 * are not printable ASCII shown as '?'. */
static void arch_showname(char *out, size_t size, const char *name)
{
    size_t i = 0;
    for (; name && name[i] && i + 4 < size && i < 200; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (name && name[i] && i + 4 < size) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* Normalises name into out (components joined by '/', no empty or "."
 * components).  `base` (may be "") is prepended first and ".." pops a
 * component when allow_up is set (links).  Returns NULL or a reason. */
static const char *arch_normalise(char *out, const char *base, const char *name, int allow_up)
{
    size_t len = 0;
    int depth = 0;
    const char *parts[2] = {base, name};
    if (name[0] == '/')
        return allow_up ? "points outside the archive (absolute target)" : "absolute name";
    out[0] = '\0';
    for (int p = 0; p < 2; p++) {
        const char *s = parts[p];
        while (*s) {
            while (*s == '/')
                s++;
            if (!*s)
                break;
            const char *e = s;
            while (*e && *e != '/') {
                unsigned char c = (unsigned char)*e;
                if (c == '\\')
                    return "backslash in name";
                if (c < 0x20 || c == 0x7f)
                    return "control character in name";
                e++;
            }
            size_t n = (size_t)(e - s);
            if (n == 1 && s[0] == '.') {
                /* skip */
            } else if (n == 2 && s[0] == '.' && s[1] == '.') {
                if (!allow_up)
                    return "'..' in name";
                if (depth == 0)
                    return "points outside the archive";
                while (len > 0 && out[len - 1] != '/')
                    len--;
                if (len > 0)
                    len--; /* the '/' before the popped component */
                out[len] = '\0';
                depth--;
            } else {
                if (n > ARCH_MAX_COMPONENT)
                    return "name component longer than 255 bytes";
                if (++depth > ARCH_MAX_DEPTH)
                    return "name nested deeper than 64 levels";
                if (len + (len ? 1 : 0) + n >= ARCH_MAX_NAME)
                    return "name longer than 1024 bytes";
                if (len)
                    out[len++] = '/';
                memcpy(out + len, s, n);
                len += n;
                out[len] = '\0';
            }
            s = e;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Writing below the root descriptor (never through a symlink)
 * ------------------------------------------------------------------------- */

/* Opens (creating when missing) the directory `path` (normalised, relative)
 * below root, component by component with O_NOFOLLOW.  `ncomp` limits how
 * many leading components are used (-1: all).  Returns a descriptor or -1
 * with errno set. */
static int arch_opendir(int root, const char *path, int ncomp)
{
    int fd = dup(root);
    if (fd < 0)
        return -1;
    char comp[ARCH_MAX_COMPONENT + 1];
    const char *s = path;
    while (*s && ncomp != 0) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        memcpy(comp, s, n);
        comp[n] = '\0';
        int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0 && errno == ENOENT) {
            if (mkdirat(fd, comp, 0755) != 0 && errno != EEXIST) {
                int err = errno;
                close(fd);
                errno = err;
                return -1;
            }
            next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        int err = errno;
        close(fd);
        if (next < 0) {
            errno = (err == ELOOP) ? ENOTDIR : err; /* a symlink is not a directory here */
            return -1;
        }
        fd = next;
        if (ncomp > 0)
            ncomp--;
        s = e ? e + 1 : s + n;
    }
    return fd;
}

/* Number of '/'-separated components of a normalised name. */
static int arch_ncomp(const char *path)
{
    int n = *path ? 1 : 0;
    for (; *path; path++)
        n += *path == '/';
    return n;
}

/* Writes all of data to fd; 0 or an errno. */
static int arch_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * extract
 * ------------------------------------------------------------------------- */

typedef struct arch_state {
    arch_extract *x;
    arch_limits lim;
    lua_Integer entries, files, dirs, bytes;
    char name[ARCH_MAX_NAME + 1];   /* normalised entry name */
    char target[ARCH_MAX_NAME + 1]; /* normalised link target */
    char err[512];
} arch_state;

static int arch_fail(arch_state *st, const char *raw, const char *why)
{
    char shown[256];
    arch_showname(shown, sizeof shown, raw);
    snprintf(st->err, sizeof st->err, "%s: %s", shown, why);
    return -1;
}

static int arch_fail_archive(arch_state *st)
{
    const char *msg = archive_error_string(st->x->a);
    snprintf(st->err, sizeof st->err, "archive: %s", msg ? msg : "unreadable archive");
    return -1;
}

/* Extracts the data of the current entry into name (a regular file).
 * 0, or -1 with st->err set.  Touches no Lua state. */
static int arch_file(arch_state *st, struct archive_entry *e, const char *raw)
{
    arch_extract *x = st->x;
    if (archive_entry_size_is_set(e)) {
        la_int64_t size = archive_entry_size(e);
        if (size > st->lim.max_file_bytes)
            return arch_fail(st, raw, "file larger than the per-file limit");
        if (size > st->lim.max_bytes - st->bytes)
            return arch_fail(st, raw, "archive expands beyond the size limit");
    }
    int n = arch_ncomp(st->name);
    x->dirfd = arch_opendir(x->root, st->name, n - 1);
    if (x->dirfd < 0)
        return arch_fail(st, raw, strerror(errno));
    const char *base = strrchr(st->name, '/');
    base = base ? base + 1 : st->name;
    mode_t mode = (archive_entry_perm(e) & 0111) ? 0755 : 0644;
    x->fd = openat(x->dirfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (x->fd < 0)
        return arch_fail(st, raw, errno == EEXIST ? "given twice in the archive" : strerror(errno));
    close(x->dirfd);
    x->dirfd = -1;
    char buf[ARCH_BLOCK];
    lua_Integer this_file = 0;
    for (;;) {
        la_ssize_t got = archive_read_data(x->a, buf, sizeof buf);
        if (got == 0)
            break;
        if (got < 0)
            return arch_fail_archive(st);
        this_file += got;
        st->bytes += got;
        if (this_file > st->lim.max_file_bytes)
            return arch_fail(st, raw, "file larger than the per-file limit");
        if (st->bytes > st->lim.max_bytes)
            return arch_fail(st, raw, "archive expands beyond the size limit");
        int err = arch_write_all(x->fd, buf, (size_t)got);
        if (err)
            return arch_fail(st, raw, strerror(err));
    }
    int rc = close(x->fd);
    x->fd = -1;
    if (rc != 0)
        return arch_fail(st, raw, strerror(errno));
    st->files++;
    return 0;
}

/* Pushes {path=, target=, hard=} onto the links table at index `links`.
 * [-0, +0, m] */
static void arch_pushlink(lua_State *L, int links, const arch_state *st, int hard)
{
    lua_createtable(L, 0, 3);
    lua_pushstring(L, st->name);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, st->target);
    lua_setfield(L, -2, "target");
    lua_pushboolean(L, hard);
    lua_setfield(L, -2, "hard");
    lua_rawseti(L, links, (lua_Integer)lua_rawlen(L, links) + 1);
}

static lua_Integer arch_limit(lua_State *L, int idx, const char *field, lua_Integer def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    lua_getfield(L, idx, field);
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    int absent = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (absent)
        return def;
    if (!isnum || v < 0)
        luaL_error(L, "bad argument #3 to 'extract' (%s must be an integer >= 0)", field);
    return v;
}

/* extract(data, dest [, limits]) -> info | nil, err  [-0, +1|2, m] */
static int arch_extract_l(lua_State *L)
{
    size_t len, dlen;
    const char *data = luaL_checklstring(L, 1, &len);
    const char *dest = luaL_checklstring(L, 2, &dlen);
    luaL_argcheck(L, strlen(dest) == dlen, 2, "path contains a NUL byte");
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    arch_state st;
    memset(&st, 0, sizeof st);
    st.lim.max_entries = arch_limit(L, 3, "max_entries", 10000);
    st.lim.max_bytes = arch_limit(L, 3, "max_bytes", (lua_Integer)64 << 20);
    st.lim.max_file_bytes = arch_limit(L, 3, "max_file_bytes", st.lim.max_bytes);
    lua_settop(L, 3);
    lua_newtable(L); /* data dest limits links */
    int links = 4;

    arch_extract *x = lua_newuserdatauv(L, sizeof *x, 0);
    memset(x, 0, sizeof *x);
    x->root = x->fd = x->dirfd = -1;
    luaL_setmetatable(L, EXTRACT_MT);
    lua_toclose(L, 5); /* data dest limits links box */
    st.x = x;

    x->root = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (x->root < 0) {
        int err = errno;
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: %s", dest, strerror(err));
        return 2;
    }
    x->a = archive_read_new();
    if (!x->a)
        return luaL_error(L, "not enough memory");
    if (archive_read_support_format_zip(x->a) != ARCHIVE_OK ||
        archive_read_support_format_tar(x->a) != ARCHIVE_OK ||
        archive_read_support_filter_gzip(x->a) != ARCHIVE_OK ||
        archive_read_support_filter_none(x->a) != ARCHIVE_OK ||
        archive_read_open_memory(x->a, data, len) != ARCHIVE_OK) {
        arch_fail_archive(&st);
        goto fail;
    }
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(x->a, &e);
        if (rc == ARCHIVE_EOF)
            break;
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            arch_fail_archive(&st);
            goto fail;
        }
        if (++st.entries > st.lim.max_entries) {
            snprintf(st.err, sizeof st.err, "archive has more than %lld entries (the limit)",
                     (long long)st.lim.max_entries);
            goto fail;
        }
        const char *raw = archive_entry_pathname(e);
        if (!raw)
            raw = archive_entry_pathname_utf8(e); /* not convertible to the locale's charset */
        if (!raw || !*raw) {
            arch_fail(&st, "(entry without a name)", "unreadable name");
            goto fail;
        }
        const char *why = arch_normalise(st.name, "", raw, 0);
        if (why) {
            arch_fail(&st, raw, why);
            goto fail;
        }
        if (!st.name[0])
            continue; /* "./": the root itself */
        const char *hard = archive_entry_hardlink(e);
        unsigned type = archive_entry_filetype(e);
        if (hard) {
            why = arch_normalise(st.target, "", hard, 1);
            if (why || !st.target[0]) {
                arch_fail(&st, raw, why ? "hard link points outside the archive" : "hard link to the root");
                goto fail;
            }
            arch_pushlink(L, links, &st, 1);
        } else if (type == AE_IFDIR) {
            int fd = arch_opendir(x->root, st.name, -1);
            if (fd < 0) {
                arch_fail(&st, raw, strerror(errno));
                goto fail;
            }
            close(fd);
            st.dirs++;
        } else if (type == AE_IFREG) {
            if (arch_file(&st, e, raw) != 0)
                goto fail;
        } else if (type == AE_IFLNK) {
            const char *to = archive_entry_symlink(e);
            if (!to || !*to) {
                arch_fail(&st, raw, "symbolic link without a target");
                goto fail;
            }
            /* resolve from the link's directory */
            char dir[ARCH_MAX_NAME + 1];
            memcpy(dir, st.name, strlen(st.name) + 1);
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = '\0';
            else
                dir[0] = '\0';
            why = arch_normalise(st.target, dir, to, 1);
            if (why) {
                char msg[128];
                snprintf(msg, sizeof msg, "symbolic link %s", why);
                arch_fail(&st, raw, msg);
                goto fail;
            }
            arch_pushlink(L, links, &st, 0);
        } else {
            arch_fail(&st, raw, "unsupported entry type (device, FIFO or socket)");
            goto fail;
        }
    }

    lua_createtable(L, 0, 7);
    lua_pushinteger(L, st.entries);
    lua_setfield(L, -2, "entries");
    lua_pushinteger(L, st.files);
    lua_setfield(L, -2, "files");
    lua_pushinteger(L, st.dirs);
    lua_setfield(L, -2, "dirs");
    lua_pushinteger(L, st.bytes);
    lua_setfield(L, -2, "bytes");
    const char *fmt = archive_format_name(x->a);
    lua_pushstring(L, fmt ? fmt : "unknown");
    lua_setfield(L, -2, "format");
    lua_pushvalue(L, links);
    lua_setfield(L, -2, "links"); /* data dest limits links box info */
    arch_release(x);
    return 1;

fail:
    arch_release(x); /* free before anything else may raise */
    luaL_pushfail(L);
    lua_pushstring(L, st.err);
    return 2;
}

/* ---------------------------------------------------------------------------
 * zip: writing a zip archive in memory
 * ------------------------------------------------------------------------- */

/* The resources of one zip() call: the writer, its entry and the output,
 * grown by the write callback with lumu_realloc (so the tracking allocator
 * sees it). */
typedef struct arch_writer {
    struct archive *a;
    struct archive_entry *e;
    char *buf;
    size_t len, cap, max;
    int failed; /* set by the callback: ARCH_W_MEMORY or ARCH_W_LIMIT */
    locale_t utf8, saved; /* as in arch_extract */
} arch_writer;

enum { ARCH_W_MEMORY = 1, ARCH_W_LIMIT };

static void arch_writer_release(arch_writer *w)
{
    if (w->a) {
        archive_write_free(w->a); /* may still call arch_write_cb: buf stays valid */
        w->a = NULL;
    }
    if (w->e) {
        archive_entry_free(w->e);
        w->e = NULL;
    }
    if (w->buf) {
        lumu_free(w->buf);
        w->buf = NULL;
    }
    w->len = w->cap = 0;
    arch_utf8_end(&w->utf8, &w->saved);
}

/* __gc and __close: idempotent. */
static int writer_gc(lua_State *L)
{
    arch_writer_release(luaL_checkudata(L, 1, WRITER_MT));
    return 0;
}

/* libarchive's write callback: appends to w->buf.  Never raises; on
 * failure it records why and returns -1 (libarchive then fails). */
static la_ssize_t arch_write_cb(struct archive *a, void *client, const void *data, size_t n)
{
    arch_writer *w = client;
    (void)a;
    if (n > w->max - w->len) {
        w->failed = ARCH_W_LIMIT;
        return -1;
    }
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 65536;
        while (cap - w->len < n)
            cap = cap > w->max / 2 ? w->max : cap * 2;
        char *p = lumu_realloc(w->buf, cap);
        if (!p) {
            w->failed = ARCH_W_MEMORY;
            return -1;
        }
        w->buf = p;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, data, n);
    w->len += n;
    return (la_ssize_t)n;
}

/* Field `field` of the entry table at idx as an integer in lo..hi, or def
 * when absent.  Raises on a bad value.  [-0, +0, e] */
static lua_Integer arch_entry_int(lua_State *L, int idx, lua_Integer i, const char *field, lua_Integer def,
                                  lua_Integer lo, lua_Integer hi)
{
    int isnum;
    lua_getfield(L, idx, field);
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    int absent = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (absent)
        return def;
    if (!isnum || v < lo || v > hi) {
        lua_pushfstring(L, "entry %I: %s must be an integer in %I..%I", i, field, lo, hi);
        return luaL_argerror(L, 1, lua_tostring(L, -1));
    }
    return v;
}

/* Records "zip: [name: ]<why>" in err: libarchive's message, or the
 * callback's reason. */
static void arch_writer_error(const arch_writer *w, const char *name, char *err, size_t size)
{
    char shown[256] = "";
    const char *why;
    if (w->failed == ARCH_W_LIMIT)
        why = "archive larger than 4 GiB (zip64 is not supported)";
    else if (w->failed == ARCH_W_MEMORY)
        why = "not enough memory";
    else
        why = archive_error_string(w->a) ? archive_error_string(w->a) : "cannot write the archive";
    if (name)
        arch_showname(shown, sizeof shown, name);
    snprintf(err, size, "zip: %s%s%s", shown, name ? ": " : "", why);
}

/* zip(entries [, level]) -> bytes | nil, err  [-0, +1|2, e] */
static int arch_zip_l(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer level = luaL_optinteger(L, 2, -1);
    luaL_argcheck(L, level >= -1 && level <= 9, 2, "level must be -1..9");
    lua_settop(L, 2);
    arch_writer *w = lua_newuserdatauv(L, sizeof *w, 0);
    memset(w, 0, sizeof *w);
    w->max = 0xffffffffu; /* no zip64 */
    luaL_setmetatable(L, WRITER_MT);
    lua_toclose(L, 3); /* entries level box */

    char err[512];
    const char *failed_name = NULL;
    char lvl[8];
    snprintf(lvl, sizeof lvl, "%d", (int)level);
    arch_utf8_begin(&w->utf8, &w->saved);
    w->a = archive_write_new();
    w->e = archive_entry_new();
    if (!w->a || !w->e)
        return luaL_error(L, "not enough memory");
    if (archive_write_set_format_zip(w->a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
        archive_write_set_format_option(w->a, "zip", "hdrcharset", "UTF-8") != ARCHIVE_OK ||
        archive_write_set_format_option(w->a, "zip", "compression", level == 0 ? "store" : "deflate") !=
            ARCHIVE_OK ||
        (level > 0 && archive_write_set_format_option(w->a, "zip", "compression-level", lvl) != ARCHIVE_OK) ||
        archive_write_open(w->a, w, NULL, arch_write_cb, NULL) != ARCHIVE_OK)
        goto fail;

    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) != LUA_TTABLE) { /* entries level box entry */
            lua_pushfstring(L, "entry %I is not a table", i);
            return luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        size_t nlen, dlen = 0;
        lua_getfield(L, 4, "name"); /* entries level box entry name */
        const char *name = lua_type(L, 5) == LUA_TSTRING ? lua_tolstring(L, 5, &nlen) : NULL;
        if (!name || nlen == 0 || strlen(name) != nlen) {
            lua_pushfstring(L, "entry %I: name must be a non-empty string without NUL", i);
            return luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        lua_getfield(L, 4, "dir"); /* entries level box entry name dir */
        int dir = lua_toboolean(L, 6);
        lua_pop(L, 1);
        lua_getfield(L, 4, "data"); /* entries level box entry name data */
        const char *data = NULL;
        if (lua_type(L, 6) == LUA_TSTRING)
            data = lua_tolstring(L, 6, &dlen);
        else if (!lua_isnil(L, 6) || !dir) {
            lua_pushfstring(L, "entry %I: data must be a string", i);
            return luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        if (dir && dlen) {
            lua_pushfstring(L, "entry %I: a directory has no data", i);
            return luaL_argerror(L, 1, lua_tostring(L, -1));
        }
        lua_Integer mode = arch_entry_int(L, 4, i, "mode", dir ? 0755 : 0644, 0, 07777);
        lua_Integer mtime = arch_entry_int(L, 4, i, "mtime", 315532800, 0, 0x7fffffff);

        archive_entry_clear(w->e);
        archive_entry_set_pathname_utf8(w->e, name);
        archive_entry_set_filetype(w->e, dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(w->e, (__LA_MODE_T)mode);
        archive_entry_set_size(w->e, (la_int64_t)dlen);
        archive_entry_set_mtime(w->e, (time_t)mtime, 0);
        int rc = archive_write_header(w->a, w->e);
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            failed_name = name;
            goto fail;
        }
        for (size_t done = 0; done < dlen;) {
            la_ssize_t put = archive_write_data(w->a, data + done, dlen - done);
            if (put <= 0) {
                failed_name = name;
                goto fail;
            }
            done += (size_t)put;
        }
        if (archive_write_finish_entry(w->a) != ARCHIVE_OK) {
            failed_name = name;
            goto fail;
        }
        lua_settop(L, 3); /* entries level box */
    }
    if (archive_write_close(w->a) != ARCHIVE_OK)
        goto fail;
    if (w->failed == ARCH_W_MEMORY)
        goto fail;
    lua_pushlstring(L, w->buf ? w->buf : "", w->len); /* entries level box bytes */
    arch_writer_release(w);
    return 1;

fail:
    arch_writer_error(w, failed_name, err, sizeof err); /* name is still on the stack */
    int memory = w->failed == ARCH_W_MEMORY;
    arch_writer_release(w); /* free before anything may raise */
    if (memory)
        return luaL_error(L, "not enough memory");
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
}

/* ---------------------------------------------------------------------------
 * list and read: zip archives in memory, through the central directory
 * ------------------------------------------------------------------------- */

/* Pushes a to-be-closed reader box (the extract box, without descriptors)
 * and opens data as a zip archive with a central directory (libarchive's
 * seekable zip reader).  The seekable reader refuses an archive without
 * entries: the canonical one (a lone end record, no comment, as libarchive
 * and Python write it) gives *empty = 1 with x->a NULL.  Returns NULL after
 * writing the reason to err.  [-0, +1, m] */
static arch_extract *arch_zipreader(lua_State *L, const char *data, size_t len, int *empty, char *err,
                                    size_t size)
{
    static const char empty_zip[22] = "PK\5\6";
    arch_extract *x = lua_newuserdatauv(L, sizeof *x, 0);
    memset(x, 0, sizeof *x);
    x->root = x->fd = x->dirfd = -1;
    luaL_setmetatable(L, EXTRACT_MT);
    lua_toclose(L, -1);
    *empty = len == sizeof empty_zip && memcmp(data, empty_zip, len) == 0;
    if (*empty)
        return x;
    arch_utf8_begin(&x->utf8, &x->saved);
    x->a = archive_read_new();
    if (!x->a) {
        arch_release(x);
        luaL_error(L, "not enough memory");
        return NULL;
    }
    if (archive_read_support_format_zip_seekable(x->a) != ARCHIVE_OK ||
        archive_read_open_memory(x->a, data, len) != ARCHIVE_OK) {
        const char *msg = archive_error_string(x->a);
        snprintf(err, size, "zip: %s", msg ? msg : "unreadable archive");
        arch_release(x);
        return NULL;
    }
    return x;
}

/* The name of e (UTF-8 when libarchive has it), or NULL. */
static const char *arch_entry_name(struct archive_entry *e)
{
    const char *name = archive_entry_pathname_utf8(e);
    return name ? name : archive_entry_pathname(e);
}

/* Reads the next header into *e: 1, 0 at the end, -1 with err set. */
static int arch_zipnext(arch_extract *x, struct archive_entry **e, lua_Integer count, lua_Integer max,
                        char *err, size_t size)
{
    int rc = archive_read_next_header(x->a, e);
    if (rc == ARCHIVE_EOF)
        return 0;
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
        const char *msg = archive_error_string(x->a);
        snprintf(err, size, "zip: %s", msg ? msg : "unreadable archive");
        return -1;
    }
    if (count > max) {
        snprintf(err, size, "zip: more than %lld entries (the limit)", (long long)max);
        return -1;
    }
    const char *name = arch_entry_name(*e);
    if (!name || !*name) {
        snprintf(err, size, "zip: entry %lld has no readable name", (long long)count);
        return -1;
    }
    if (archive_entry_is_encrypted(*e)) {
        char shown[256];
        arch_showname(shown, sizeof shown, name);
        snprintf(err, size, "zip: %s: encrypted entries are not supported", shown);
        return -1;
    }
    return 1;
}

/* "store", "deflate" or libarchive's word for the current entry's method,
 * from the format name it sets per entry: "ZIP 2.0 (deflation)". */
static void arch_pushmethod(lua_State *L, struct archive *a)
{
    const char *fmt = archive_format_name(a);
    const char *open = fmt ? strchr(fmt, '(') : NULL;
    const char *close = open ? strchr(open, ')') : NULL;
    if (!close)
        lua_pushstring(L, "unknown");
    else if (strncmp(open, "(uncompressed)", 14) == 0)
        lua_pushstring(L, "store");
    else if (strncmp(open, "(deflation)", 11) == 0)
        lua_pushstring(L, "deflate");
    else
        lua_pushlstring(L, open + 1, (size_t)(close - open - 1));
}

/* list(bytes [, max_entries]) -> entries | nil, err  [-0, +1|2, m] */
static int arch_list_l(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    lua_Integer max = luaL_optinteger(L, 2, 65535);
    luaL_argcheck(L, max >= 0, 2, "max_entries must be >= 0");
    lua_settop(L, 2);
    lua_newtable(L); /* bytes max out */
    char err[512];
    int empty;
    arch_extract *x = arch_zipreader(L, data, len, &empty, err, sizeof err); /* bytes max out box */
    if (!x)
        goto fail;
    for (lua_Integer i = 1; !empty; i++) {
        struct archive_entry *e;
        int rc = arch_zipnext(x, &e, i, max, err, sizeof err);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            break;
        unsigned type = archive_entry_filetype(e);
        lua_createtable(L, 0, 9); /* bytes max out box entry */
        lua_pushstring(L, arch_entry_name(e));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, type == AE_IFDIR ? "directory" : type == AE_IFREG ? "file"
                          : type == AE_IFLNK ? "symlink" : "other");
        lua_setfield(L, -2, "type");
        lua_pushboolean(L, type == AE_IFDIR);
        lua_setfield(L, -2, "dir");
        if (archive_entry_size_is_set(e)) {
            lua_pushinteger(L, (lua_Integer)archive_entry_size(e));
            lua_setfield(L, -2, "size");
        }
        lua_pushinteger(L, (lua_Integer)archive_entry_perm(e));
        lua_setfield(L, -2, "mode");
        lua_pushinteger(L, (lua_Integer)archive_entry_mtime(e));
        lua_setfield(L, -2, "mtime");
        arch_pushmethod(L, x->a);
        lua_setfield(L, -2, "method");
        lua_pushinteger(L, i);
        lua_setfield(L, -2, "index");
        lua_rawseti(L, 3, i); /* bytes max out box */
    }
    arch_release(x);
    lua_pushvalue(L, 3);
    return 1;

fail:
    if (x)
        arch_release(x);
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
}

/* read(bytes, name | index [, max_bytes]) -> data | nil, err  [-0, +1|2, m]
 * The first entry called name (or the index-th entry, as in list()), a
 * regular file; at most its declared size and max_bytes (default 256 MiB)
 * are inflated.  libarchive checks the CRC-32. */
static int arch_read_l(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    const char *want = NULL;
    lua_Integer windex = 0;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        windex = luaL_checkinteger(L, 2);
        luaL_argcheck(L, windex >= 1, 2, "index must be >= 1");
    } else {
        want = luaL_checkstring(L, 2);
    }
    lua_Integer max = luaL_optinteger(L, 3, (lua_Integer)256 << 20);
    luaL_argcheck(L, max >= 0, 3, "max_bytes must be >= 0");
    lua_settop(L, 3);
    char err[512];
    char shown[256];
    int empty;
    arch_extract *x = arch_zipreader(L, data, len, &empty, err, sizeof err); /* bytes which max box */
    if (!x)
        goto fail;
    struct archive_entry *e = NULL;
    for (lua_Integer i = 1;; i++) {
        int rc = empty ? 0 : arch_zipnext(x, &e, i, windex ? windex : 65535, err, sizeof err);
        if (rc < 0)
            goto fail;
        if (rc == 0) {
            if (want) {
                arch_showname(shown, sizeof shown, want);
                snprintf(err, sizeof err, "zip: no entry %s", shown);
            } else {
                snprintf(err, sizeof err, "zip: no entry %lld", (long long)windex);
            }
            goto fail;
        }
        if (windex ? i == windex : strcmp(arch_entry_name(e), want) == 0)
            break;
    }
    arch_showname(shown, sizeof shown, arch_entry_name(e));
    if (archive_entry_filetype(e) != AE_IFREG) {
        snprintf(err, sizeof err, "zip: %s: not a regular file", shown);
        goto fail;
    }
    lua_Integer declared = archive_entry_size_is_set(e) ? (lua_Integer)archive_entry_size(e) : -1;
    lua_Integer limit = declared >= 0 && declared < max ? declared : max;
    if (declared > max) {
        snprintf(err, sizeof err, "zip: %s: larger than %lld bytes", shown, (long long)max);
        goto fail;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b); /* bytes which max box [buffer] */
    lua_Integer total = 0;
    for (;;) {
        char *p = luaL_prepbuffsize(&b, ARCH_BLOCK);
        la_ssize_t got = archive_read_data(x->a, p, ARCH_BLOCK);
        if (got == 0)
            break;
        if (got < 0) {
            const char *msg = archive_error_string(x->a);
            snprintf(err, sizeof err, "zip: %s: %s", shown, msg ? msg : "unreadable data");
            goto fail_buffer;
        }
        total += got;
        if (total > limit) {
            snprintf(err, sizeof err, "zip: %s: more than %lld bytes%s", shown, (long long)limit,
                     limit == declared ? " (its declared size)" : "");
            goto fail_buffer;
        }
        luaL_addsize(&b, (size_t)got);
    }
    if (declared >= 0 && total != declared) {
        snprintf(err, sizeof err, "zip: %s: %lld bytes instead of %lld", shown, (long long)total,
                 (long long)declared);
        goto fail_buffer;
    }
    arch_release(x);
    luaL_pushresult(&b); /* bytes which max box data */
    return 1;

fail_buffer:
    lua_settop(L, 4); /* drop the buffer: bytes which max box */
fail:
    if (x)
        arch_release(x);
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
}

/* version() -> string  [-0, +1, m] */
static int arch_version(lua_State *L)
{
    lua_pushstring(L, archive_version_details());
    return 1;
}

int luaopen_lumu__archive(lua_State *L)
{
    static const luaL_Reg fns[] = {{"extract", arch_extract_l}, {"list", arch_list_l}, {"read", arch_read_l},
                                   {"version", arch_version}, {"zip", arch_zip_l}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", extract_gc}, {"__close", extract_gc}, {NULL, NULL}};
    static const luaL_Reg wmeta[] = {{"__gc", writer_gc}, {"__close", writer_gc}, {NULL, NULL}};
    lumu_lazy_check(L, &lumu_lazy_archive);
    luaL_newmetatable(L, EXTRACT_MT);
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    luaL_newmetatable(L, WRITER_MT);
    luaL_setfuncs(L, wmeta, 0);
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
