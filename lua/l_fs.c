/*
 * lumu._fs: the POSIX core of lumu.fs (stdlib/lumu/fs.lua).
 *
 * Expected failures return nil, "path: strerror"; bad arguments raise.
 * File descriptors and DIR streams that stay open across Lua allocations
 * belong to a to-be-closed userdata, so a memory error never leaks them.
 *
 *   read(path) -> string | nil, err
 *   same(path, data) -> boolean    the file holds exactly data (no Lua memory)
 *   write(path, data, mode) -> true | nil, err     atomic; mode -1 = 0644 & ~umask
 *   append(path, data, mode) -> true | nil, err    mode used on creation only
 *   mkdir(path, mode) -> true | nil, err           with parents (mkdir -p)
 *   list(dir) -> { name, ... } unsorted, without . and .. | nil, err
 *   stat(path, follow) -> {type=, size=, mtime=, mode=} | nil, err
 *   remove(path) -> true | nil, err                file or empty directory
 *   chmod(path, mode) -> true | nil, err
 *   realpath(path) -> string | nil, err
 *   cwd() -> string | nil, err
 *   mkdtemp(template) -> path | nil, err            template ends in XXXXXX
 */
#include "host.h"

#include <lauxlib.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FD_MT "lumu.fs.Fd"
#define DIR_MT "lumu.fs.Dir"

/* Pushes nil, "path: strerror(err)".  [-0, +2, m] */
static int fs_fail(lua_State *L, const char *path, int err)
{
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(err));
    return 2;
}

/* A path argument: a string without NUL bytes.  [-0, +0, v] */
static const char *fs_checkpath(lua_State *L, int arg)
{
    size_t len;
    const char *p = luaL_checklstring(L, arg, &len);
    luaL_argcheck(L, strlen(p) == len, arg, "path contains a NUL byte");
    return p;
}

/* A permission mode argument in 0..07777; def when absent or -1.
 * [-0, +0, v] */
static mode_t fs_checkmode(lua_State *L, int arg, mode_t def, int *given)
{
    lua_Integer m = luaL_optinteger(L, arg, -1);
    if (given)
        *given = m != -1;
    if (m == -1)
        return def;
    luaL_argcheck(L, m >= 0 && m <= 07777, arg, "mode out of range");
    return (mode_t)m;
}

/* ---------------------------------------------------------------------------
 * Owned descriptors (liolib's newprefile recipe: box first, resource after)
 * ------------------------------------------------------------------------- */

/* Pushes a closed fd box marked to-be-closed.  [-0, +1, m] */
static int *fs_newfd(lua_State *L)
{
    int *fd = lua_newuserdatauv(L, sizeof *fd, 0);
    *fd = -1;
    luaL_setmetatable(L, FD_MT);
    lua_toclose(L, -1);
    return fd;
}

static int fd_gc(lua_State *L)
{
    int *fd = luaL_checkudata(L, 1, FD_MT);
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return 0;
}

/* Pushes a DIR box marked to-be-closed.  [-0, +1, m] */
static DIR **fs_newdir(lua_State *L)
{
    DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
    *d = NULL;
    luaL_setmetatable(L, DIR_MT);
    lua_toclose(L, -1);
    return d;
}

static int dir_gc(lua_State *L)
{
    DIR **d = luaL_checkudata(L, 1, DIR_MT);
    if (*d) {
        closedir(*d);
        *d = NULL;
    }
    return 0;
}

/* Writes all of data; 0 or an errno. */
static int fs_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len > (1u << 30) ? (1u << 30) : len);
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
 * Functions
 * ------------------------------------------------------------------------- */

/* read(path) -> string | nil, err  [-0, +1|2, m] */
static int fs_read(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    lua_settop(L, 1);
    int *fd = fs_newfd(L); /* path fdbox */
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return fs_fail(L, path, errno);
    struct stat st;
    if (fstat(*fd, &st) != 0)
        return fs_fail(L, path, errno);
    if (S_ISDIR(st.st_mode))
        return fs_fail(L, path, EISDIR);
    /* Regular files: one read of the whole size (+1 byte of slack for the
     * read that sees EOF); others (procfs, pipes) grow in 64 KiB steps. */
    size_t expect = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size : 0;
    size_t total = 0, hint = expect ? expect + 1 : 8192;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (;;) {
        char *p = luaL_prepbuffsize(&b, hint);
        ssize_t n = read(*fd, p, hint);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fs_fail(L, path, errno);
        }
        if (n == 0)
            break;
        luaL_addsize(&b, (size_t)n);
        total += (size_t)n;
        hint = expect && total == expect ? 1 : 65536;
    }
    luaL_pushresult(&b); /* path fdbox data */
    lua_closeslot(L, 2);
    return 1;
}

/* same(path, data) -> true when path is a regular file holding exactly the
 * bytes of data; false otherwise (missing, unreadable, another size or
 * content).  Compares in pieces as it reads, so checking that an output is
 * up to date allocates nothing (fs.read would make a Lua string of the file,
 * and the garbage collector pay for it).  No descriptor outlives the call:
 * nothing here can raise between open and close. */
static int fs_same(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    struct stat st;
    int same = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uintmax_t)st.st_size == (uintmax_t)n;
    char buf[32768];
    size_t off = 0;
    while (same) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            same = 0;
        } else if (r == 0) {
            same = off == n; /* EOF: the whole file was compared */
            break;
        } else if ((size_t)r > n - off || memcmp(buf, data + off, (size_t)r) != 0) {
            same = 0;        /* longer than data (it grew), or different */
        } else {
            off += (size_t)r;
        }
    }
    close(fd);
    lua_pushboolean(L, same);
    return 1;
}

/* Fills buf with "<dir of path>/.<base>.tmp-<random>".  0 or an errno. */
static int fs_tempname(char *buf, size_t size, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = slash ? slash + 1 : path;
    unsigned char rnd[6];
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        unsigned long v = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16);
        for (size_t i = 0; i < sizeof rnd; i++)
            rnd[i] = (unsigned char)(v >> (8 * i));
    }
    int n = snprintf(buf, size, "%.*s.%s.tmp-%02x%02x%02x%02x%02x%02x", (int)dirlen, path, base,
                     rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    if (n < 0 || (size_t)n >= size)
        return ENAMETOOLONG;
    return 0;
}

/* Best-effort fsync of the directory holding path (makes a rename durable). */
static void fs_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* write(path, data, mode) -> true | nil, err  [-0, +1|2, m]
 * Nothing in between open and close allocates from Lua, so the descriptor
 * and the temp file are released before any error is pushed. */
static int fs_write(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    int explicit_mode;
    mode_t mode = fs_checkmode(L, 3, 0644, &explicit_mode);
    if (!*path)
        return fs_fail(L, path, ENOENT);
    if (path[strlen(path) - 1] == '/')
        return fs_fail(L, path, EISDIR);

    char tmp[PATH_MAX + 64];
    int fd = -1, err = 0;
    for (int tries = 0; tries < 100; tries++) {
        err = fs_tempname(tmp, sizeof tmp, path);
        if (err)
            break;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
        if (fd >= 0 || errno != EEXIST) {
            err = fd < 0 ? errno : 0;
            break;
        }
        err = EEXIST;
    }
    if (fd < 0)
        return fs_fail(L, path, err);
    if (explicit_mode && fchmod(fd, mode) != 0)
        err = errno;
    if (!err)
        err = fs_write_all(fd, data, len);
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return fs_fail(L, path, err);
    }
    fs_sync_dir(path);
    lua_pushboolean(L, 1);
    return 1;
}

/* append(path, data, mode) -> true | nil, err  [-0, +1|2, m] */
static int fs_append(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    mode_t mode = fs_checkmode(L, 3, 0644, NULL);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode);
    if (fd < 0)
        return fs_fail(L, path, errno);
    int err = fs_write_all(fd, data, len);
    if (close(fd) != 0 && !err)
        err = errno;
    if (err)
        return fs_fail(L, path, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* mkdir(path, mode) -> true | nil, err  [-0, +1|2, m] */
static int fs_mkdir(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    mode_t mode = fs_checkmode(L, 2, 0777, NULL);
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0)
        return fs_fail(L, path, ENOENT);
    if (len >= sizeof buf)
        return fs_fail(L, path, ENAMETOOLONG);
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/') /* "a/b/" -> "a/b" */
        buf[--len] = '\0';
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/') /* "a//b" */
            continue;
        char c = buf[i];
        buf[i] = '\0';
        int last = i == len;
        if (mkdir(buf, last ? mode : 0777) != 0) {
            int err = errno;
            struct stat st;
            if (err != EEXIST || stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
                return fs_fail(L, buf, err == EEXIST ? ENOTDIR : err);
        }
        buf[i] = c;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* list(dir) -> names | nil, err  [-0, +1|2, m] */
static int fs_list(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    lua_settop(L, 1);
    DIR **d = fs_newdir(L); /* path dirbox */
    *d = opendir(path);
    if (!*d)
        return fs_fail(L, path, errno);
    lua_newtable(L); /* path dirbox names */
    lua_Integer n = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(*d);
        if (!e) {
            if (errno)
                return fs_fail(L, path, errno);
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        lua_pushstring(L, e->d_name);
        lua_rawseti(L, -2, ++n);
    }
    lua_closeslot(L, 2);
    return 1;
}

static const char *fs_typename(mode_t m)
{
    if (S_ISREG(m))
        return "file";
    if (S_ISDIR(m))
        return "directory";
    if (S_ISLNK(m))
        return "link";
    return "other";
}

/* stat(path, follow) -> table | nil, err  [-0, +1|2, m] */
static int fs_stat(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    int follow = lua_toboolean(L, 2);
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0)
        return fs_fail(L, path, errno);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, fs_typename(st.st_mode));
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
    lua_setfield(L, -2, "mtime");
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    lua_setfield(L, -2, "mode");
    return 1;
}

/* remove(path) -> true | nil, err  [-0, +1|2, m] */
static int fs_remove(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    if (remove(path) != 0)
        return fs_fail(L, path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* chmod(path, mode) -> true | nil, err  [-0, +1|2, m] */
static int fs_chmod(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    lua_Integer m = luaL_checkinteger(L, 2);
    luaL_argcheck(L, m >= 0 && m <= 07777, 2, "mode out of range");
    mode_t mode = (mode_t)m;
    if (chmod(path, mode) != 0)
        return fs_fail(L, path, errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* realpath(path) -> string | nil, err  [-0, +1|2, m] */
static int fs_realpath(lua_State *L)
{
    const char *path = fs_checkpath(L, 1);
    char buf[PATH_MAX];
    if (!realpath(path, buf))
        return fs_fail(L, path, errno);
    lua_pushstring(L, buf);
    return 1;
}

/* cwd() -> string | nil, err  [-0, +1|2, m] */
static int fs_cwd(lua_State *L)
{
    char buf[PATH_MAX];
    if (!getcwd(buf, sizeof buf))
        return fs_fail(L, ".", errno);
    lua_pushstring(L, buf);
    return 1;
}

/* mkdtemp(template) -> path | nil, err  [-0, +1|2, m] */
static int fs_mkdtemp(lua_State *L)
{
    const char *tmpl = fs_checkpath(L, 1);
    char buf[PATH_MAX];
    size_t len = strlen(tmpl);
    if (len >= sizeof buf)
        return fs_fail(L, tmpl, ENAMETOOLONG);
    memcpy(buf, tmpl, len + 1);
    if (!mkdtemp(buf))
        return fs_fail(L, tmpl, errno);
    lua_pushstring(L, buf);
    return 1;
}

int luaopen_lumu__fs(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"read", fs_read},
        {"same", fs_same},
        {"write", fs_write},
        {"append", fs_append},
        {"mkdir", fs_mkdir},
        {"list", fs_list},
        {"stat", fs_stat},
        {"remove", fs_remove},
        {"chmod", fs_chmod},
        {"realpath", fs_realpath},
        {"cwd", fs_cwd},
        {"mkdtemp", fs_mkdtemp},
        {NULL, NULL}};
    static const luaL_Reg fd_meta[] = {{"__gc", fd_gc}, {"__close", fd_gc}, {NULL, NULL}};
    static const luaL_Reg dir_meta[] = {{"__gc", dir_gc}, {"__close", dir_gc}, {NULL, NULL}};
    luaL_newmetatable(L, FD_MT);
    luaL_setfuncs(L, fd_meta, 0);
    luaL_newmetatable(L, DIR_MT);
    luaL_setfuncs(L, dir_meta, 0);
    lua_pop(L, 2);
    luaL_newlib(L, fns);
    return 1;
}
