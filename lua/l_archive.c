/*
 * lumu._archive: safe extraction of .zip and .tar(.gz) archives with
 * libarchive, for lumu.extensions (stdlib/lumu/extensions.lua).
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
 *   version() -> "libarchive 3.6.2 zlib/1.2.13 ..."
 *
 * The libarchive handle and the open descriptors belong to a to-be-closed
 * userdata created before them, so an error raised by the Lua API (memory)
 * never leaks them.  libarchive has no allocator hooks: its memory is not
 * seen by the tracking allocator.
 */
#include "host.h"

#include <lauxlib.h>

#include <archive.h>
#include <archive_entry.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXTRACT_MT "lumu.archive.Extract"

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
} arch_extract;

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
    x->a = NULL;
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

/* version() -> string  [-0, +1, m] */
static int arch_version(lua_State *L)
{
    lua_pushstring(L, archive_version_details());
    return 1;
}

int luaopen_lumu__archive(lua_State *L)
{
    static const luaL_Reg fns[] = {{"extract", arch_extract_l}, {"version", arch_version}, {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", extract_gc}, {"__close", extract_gc}, {NULL, NULL}};
    luaL_newmetatable(L, EXTRACT_MT);
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
